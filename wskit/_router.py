"""``Router``: a factory that hands each connection to another factory by path.

A factory is called before the request is known, so the router answers with
a small proxy handler; the proxy picks the route in ``on_request`` (server
side) or ``build_request`` (client side), calls the route's factory with the
same ``Sender``, and from then on forwards every hook to the handler it made.
The routed handler's own ``on_request`` / ``build_request`` still run, right
after the match, so it can accept, reject or serve plain HTTP as usual.

Patterns are paths with ``{name}`` parameters (one segment, no ``/``) and
``{name:path}`` parameters (the rest of the path, ``/`` included). They are
matched against the request's path without its query string, in the order
they were added; the first match wins. Matching happens on the path as sent
(percent-encoded), so ``%2F`` stays inside one segment; the parameters are
then percent-decoded.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple, TypeVar
from urllib.parse import unquote, urlsplit

from ._core.http import Handshake, Request, Response
from ._core.messages import CloseCode, Message
from ._errors import Error, ErrorKind
from ._handler import Factory, FactoryAdapter, FactoryLike, HandlerLike
from ._io.dispatch import Hooks
from ._sender import Sender

__all__ = ["RouteMatch", "Router"]

F = TypeVar("F", bound=FactoryLike)

_PARAM = re.compile(r"\{([^{}]*)\}")
_EMPTY: Mapping[str, str] = types.MappingProxyType({})
#: Route parameters of every connection a router matched, by connection id;
#: removed in ``Router.connection_lost`` (called for every handler made).


class RouteMatch(NamedTuple):
    """The result of :meth:`Router.match`: which route a path selects."""

    #: The pattern as it was added, e.g. ``"/rooms/{name}"``.
    pattern: str
    #: The factory registered for it.
    factory: FactoryLike
    #: Its parameters, percent-decoded: ``{"name": "lobby"}``.
    params: Mapping[str, str]


class _Route:
    __slots__ = ("adapter", "factory", "pattern", "regex")

    def __init__(self, pattern: str, factory: FactoryLike) -> None:
        self.pattern = pattern
        self.factory = factory
        self.adapter = FactoryAdapter(factory)
        self.regex = _compile(pattern)


def _compile(pattern: str) -> re.Pattern[str]:
    if not pattern.startswith("/"):
        raise Error(f"route pattern {pattern!r} must start with '/'", ErrorKind.USAGE)
    parts: list[str] = []
    names: set[str] = set()
    end = 0
    for param in _PARAM.finditer(pattern):
        parts.append(re.escape(pattern[end:param.start()]))
        name, _, kind = param.group(1).partition(":")
        if not name.isidentifier() or kind not in ("", "path"):
            raise Error(f"bad parameter {param.group(0)!r} in route {pattern!r}: use "
                        "{name} or {name:path}", ErrorKind.USAGE)
        if name in names:
            raise Error(f"parameter {name!r} appears twice in route {pattern!r}",
                        ErrorKind.USAGE)
        names.add(name)
        parts.append(f"(?P<{name}>.+)" if kind == "path" else f"(?P<{name}>[^/]+)")
        end = param.end()
    rest = pattern[end:]
    if "{" in rest or "}" in rest:
        raise Error(f"unbalanced brace in route {pattern!r}", ErrorKind.USAGE)
    parts.append(re.escape(rest))
    return re.compile("".join(parts))


class Router(Factory):
    """A factory that dispatches each connection to another factory by path.

    ::

        router = wskit.Router({"/echo": Echo})

        @router.route("/rooms/{name}")
        class Room(wskit.Handler):
            def on_open(self, handshake):
                self.room = wskit.Router.params(self.out)["name"]

        wskit.listen("127.0.0.1:3012", router)

    Any factory can be routed to: a closure, a :class:`Handler` subclass, a
    :class:`Factory` (its ``connection_lost`` and ``on_shutdown`` are called
    as if it were used alone), or another router. A server request whose
    path matches no route gets a plain HTTP ``404 Not Found`` before any
    upgrade, unless ``default`` is given. Client connections opened with
    this router as their factory are routed by their URL's path the same
    way (no route and no default: ``connect()`` fails).

    Routes may be added until the router serves its first connection;
    matching is read-only and safe from any thread.
    """

    def __init__(
        self,
        routes: Mapping[str, FactoryLike] | Iterable[tuple[str, FactoryLike]] | None = None,
        *,
        default: FactoryLike | None = None,
    ) -> None:
        self._routes: list[_Route] = []
        self._default = FactoryAdapter(default) if default is not None else None
        self._default_factory = default
        items = routes.items() if isinstance(routes, Mapping) else routes or ()
        for pattern, factory in items:
            self.add(pattern, factory)

    def add(self, pattern: str, factory: FactoryLike) -> None:
        """Route paths matching ``pattern`` (``"/rooms/{name}"``) to ``factory``.

        Raises ``Error(kind=USAGE)`` for a malformed pattern or a factory
        that is not callable.
        """
        self._routes.append(_Route(pattern, factory))

    def route(self, pattern: str) -> Callable[[F], F]:
        """Decorator form of :meth:`add`; returns the factory unchanged."""

        def register(factory: F) -> F:
            self.add(pattern, factory)
            return factory

        return register

    def match(self, path: str) -> RouteMatch | None:
        """The route for ``path`` (a query string is ignored), or ``None``."""
        route, params = self._find(path)
        if route is None:
            return None
        return RouteMatch(route.pattern, route.factory, params)

    @staticmethod
    def params(out: Sender) -> Mapping[str, str]:
        """The route parameters of ``out``'s connection (empty when none).

        Available from the moment the routed factory is called (inside the
        factory too) until after ``on_close``. Thread-safe.
        """
        return out.route_params

    @property
    def patterns(self) -> list[str]:
        """The route patterns, in matching order."""
        return [route.pattern for route in self._routes]

    # -- the Factory side -------------------------------------------------

    def server_connected(self, out: Sender) -> HandlerLike:
        """A proxy handler that picks its route in ``on_request``."""
        return _Routed(self, out, client=False)

    def client_connected(self, out: Sender) -> HandlerLike:
        """A proxy handler that picks its route from the URL in ``build_request``."""
        return _Routed(self, out, client=True)

    def connection_lost(self, handler: Any) -> None:
        """Forward to the routed factory's ``connection_lost``; forget the params."""
        if not isinstance(handler, _Routed):
            return
        handler.out.route_params = _EMPTY
        adapter = handler.adapter
        if adapter is not None and adapter.connection_lost is not None and handler.made:
            adapter.connection_lost(handler.handler)

    def on_shutdown(self) -> None:
        """Call ``on_shutdown`` of every routed :class:`Factory`, once each."""
        seen: set[int] = set()
        adapters: list[tuple[object, FactoryAdapter]] = [
            (route.factory, route.adapter) for route in self._routes]
        if self._default is not None:
            adapters.append((self._default_factory, self._default))
        for factory, adapter in adapters:
            if adapter.on_shutdown is not None and id(factory) not in seen:
                seen.add(id(factory))
                adapter.on_shutdown()

    # -- internals ---------------------------------------------------------

    def _find(self, path: str) -> tuple[_Route | None, Mapping[str, str]]:
        if path.startswith("/"):  # a request target: "//x" is a path here, not a host
            path = path.partition("?")[0].partition("#")[0]
        else:  # a URL (client side) or an absolute-form target
            path = urlsplit(path).path or "/"
        for route in self._routes:
            found = route.regex.fullmatch(path)
            if found is not None:
                params = {name: unquote(value) for name, value in found.groupdict().items()}
                return route, types.MappingProxyType(params)
        return None, _EMPTY

    def _resolve(self, path: str) -> tuple[FactoryAdapter | None, Mapping[str, str]]:
        route, params = self._find(path)
        if route is not None:
            return route.adapter, params
        return self._default, _EMPTY

    def __repr__(self) -> str:
        return f"<wskit.Router {self.patterns!r}>"


class _Routed:
    """The handler a :class:`Router` returns: routes, then forwards every hook.

    Every hook is defined here because the driver reads a handler's hooks
    once, when the factory returns, before the route is known. A hook the
    routed handler lacks costs one call that returns ``None``.
    """

    __slots__ = ("_client", "_hooks", "_router", "adapter", "handler", "made", "out")

    def __init__(self, router: Router, out: Sender, *, client: bool) -> None:
        self._router = router
        self._client = client
        self._hooks: Hooks | None = None
        self.out = out
        self.adapter: FactoryAdapter | None = None
        self.handler: Any = None
        self.made = False

    def _attach(self, path: str) -> bool:
        adapter, params = self._router._resolve(path)
        if adapter is None:
            return False
        out = self.out
        if params:
            # A router routed to by another router adds its own parameters.
            out.route_params = types.MappingProxyType({**out.route_params, **params})
        self.adapter = adapter
        make = adapter.client_connected if self._client else adapter.server_connected
        self.handler = make(out)
        self.made = True
        self._hooks = Hooks(self.handler)
        return True

    # -- routing hooks -------------------------------------------------------

    def on_request(self, request: Request) -> Any:
        if not self._attach(request.path):
            return Response(404, "not found\n")
        assert self._hooks is not None
        hook = self._hooks.on_request
        return hook(request) if hook is not None else None

    def build_request(self, url: str) -> Any:
        if not self._attach(url):
            raise Error(f"no route for {urlsplit(url).path or '/'!r} "
                        f"(routes: {self._router.patterns})", ErrorKind.USAGE)
        assert self._hooks is not None
        hook = self._hooks.build_request
        return hook(url) if hook is not None else Request.for_url(url)

    # -- forwarded hooks (None when not routed yet or not implemented) -------

    def on_response(self, response: Response) -> Any:
        hook = self._hooks.on_response if self._hooks is not None else None
        return hook(response) if hook is not None else None

    def on_open(self, handshake: Handshake) -> Any:
        hook = self._hooks.on_open if self._hooks is not None else None
        return hook(handshake) if hook is not None else None

    def on_message(self, msg: Message) -> Any:
        hook = self._hooks.on_message if self._hooks is not None else None
        return hook(msg) if hook is not None else None

    def on_close(self, code: CloseCode | int, reason: str) -> Any:
        hook = self._hooks.on_close if self._hooks is not None else None
        return hook(code, reason) if hook is not None else None

    def on_error(self, err: Error) -> Any:
        hook = self._hooks.on_error if self._hooks is not None else None
        return hook(err) if hook is not None else None

    def on_timeout(self, token: Any) -> Any:
        hook = self._hooks.on_timeout if self._hooks is not None else None
        return hook(token) if hook is not None else None

    def on_ping(self, data: bytes) -> Any:
        hook = self._hooks.on_ping if self._hooks is not None else None
        return hook(data) if hook is not None else None

    def on_pong(self, data: bytes) -> Any:
        hook = self._hooks.on_pong if self._hooks is not None else None
        return hook(data) if hook is not None else None

    def on_shutdown(self) -> Any:
        hook = self._hooks.on_shutdown if self._hooks is not None else None
        return hook() if hook is not None else None

    def __repr__(self) -> str:
        return f"<wskit routed handler {self.handler!r}>"
