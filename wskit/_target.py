"""Factories named by ``"module:attribute"``: what ``wskit serve`` and
``wskit.listen(..., workers=N)`` hand to processes that must import the
factory themselves (an object cannot cross a process boundary; its name can).
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from ._errors import Error, ErrorKind
from ._handler import Factory, FactoryLike

__all__ = ["load_factory", "split_target", "target_of"]


def split_target(target: str) -> tuple[str, str]:
    """``"module:attr"`` as ``(module, attr)``; raises ``Error(USAGE)`` otherwise."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise Error(f"{target!r}: expected module:attribute, e.g. myapp:factory",
                    ErrorKind.USAGE)
    return module_name, attr


def load_factory(target: str) -> FactoryLike:
    """Import ``module:attribute`` (the current directory first on sys.path).

    A :class:`Factory` subclass is instantiated; a Handler class or any
    callable is used as it is. Raises ``Error(USAGE)`` for a malformed
    target, a module that does not exist, or a missing attribute; other
    exceptions raised while importing propagate (the traceback tells where).
    """
    module_name, attr = split_target(target)
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise Error(f"cannot import module {module_name!r}: {exc}",
                        ErrorKind.USAGE) from exc
        raise  # an import inside the module failed
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise Error(f"module {module_name!r} has no attribute {attr!r}",
                        ErrorKind.USAGE) from None
    if isinstance(obj, type) and issubclass(obj, Factory):
        obj = obj()
    if not callable(obj) and not isinstance(obj, Factory):
        raise Error(f"{target} is {type(obj).__name__}, not a factory (a callable taking a "
                    "Sender, a Handler subclass or a wskit.Factory)", ErrorKind.USAGE)
    factory: FactoryLike = obj
    return factory


def target_of(factory: FactoryLike | str) -> str:
    """The ``"module:attr"`` another process can import ``factory`` by.

    A string is taken as it is (checked for shape). An object works when it
    is a module-level function or class of an importable module; an instance,
    a closure, a lambda or anything defined in the script being run
    (``__main__``, which another process cannot import) raises
    ``Error(USAGE)`` saying to pass ``"module:attr"`` instead.
    """
    if isinstance(factory, str):
        split_target(factory)
        return factory
    module = getattr(factory, "__module__", None)
    qualname = getattr(factory, "__qualname__", None)
    if (isinstance(module, str) and isinstance(qualname, str) and module != "__main__"
            and "<" not in qualname):
        found = sys.modules.get(module)
        obj: Any = found
        for part in qualname.split("."):
            obj = getattr(obj, part, None)
        if obj is factory:
            return f"{module}:{qualname}"
    raise Error(f"{factory!r} cannot be imported by a worker process: pass the factory as "
                "'module:attr' (a module-level name in an importable module; one defined in "
                "the script you run, in a function or as a lambda cannot be imported)",
                ErrorKind.USAGE)
