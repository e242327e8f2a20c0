"""The layout holds: checks on the source of ``wskit/``, read with ``ast``.

Nothing here imports wskit: each checker parses the files of a package
directory, so the same checkers run on a synthetic package in the control
cases (which prove that every rule can fail and reports exactly what it
should).

- **No import cycle.** Every import of a module of the package counts:
  absolute (``import wskit.x``, ``from wskit.x import y``) and relative
  (``from . import x``, ``from .x import y``), at module level, in
  functions (a lazy import that dodges a cycle at run time is still a
  cycle in the design) and under ``if TYPE_CHECKING:`` (a type-only cycle
  still ties the layers together). ``from .pkg import name`` points at the
  submodule ``pkg.name`` when there is one, else at ``pkg``. Importing
  ``a.b`` runs ``a/__init__`` first, but that implicit edge is not counted:
  every module would otherwise form a cycle with the package's
  ``__init__`` that re-exports it.
- **Small units.** No module over 600 lines, no class over 400 lines
  (decorators included).
- **No reach-ins.** In module M, ``expr._name`` (one leading underscore or
  a name-mangled ``__name``; not a dunder) is allowed only when M itself
  defines ``_name``: as ``self._name``/``cls._name``, a class-level name,
  an entry of ``__slots__``, or a function, method or class called
  ``_name``. Two refinements catch what the name alone would hide:
  ``super()._name`` is a reach-in when no base of the class is defined in
  M (overriding another module's private hook and calling up to it is
  still using its internals), and so is ``param._name`` when ``param`` is
  a parameter annotated with types none of which is a class of M (``def
  bind(self, out: Sender): out._ws`` reads the Sender's private even if
  M has a ``self._ws`` of its own). Privates of the standard library and
  third-party packages count too (``trio._core``, ``sys._getframe``), except the names in
  :data:`ALLOWED_PRIVATE` (each with its reason). ``from X import _name``
  is a reach-in unless ``X._name`` is a module of the package (private
  modules are the normal layout; private names in them are not).
  :data:`EXEMPT_PRIVATE` lists the modules the rule skips.
"""

from __future__ import annotations

import ast
import dataclasses
import pathlib
import textwrap

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "wskit"

MAX_MODULE_LINES = 600
MAX_CLASS_LINES = 400

#: Private names of other libraries that are public API in disguise.
#: Keep each with its reason; nothing else of theirs may be reached into.
ALLOWED_PRIVATE: dict[str, str] = {
    # collections.namedtuple's documented methods carry an underscore only
    # so that they cannot clash with field names.
    "_replace": "namedtuple API (docs.python.org/3/library/collections.html)",
    "_asdict": "namedtuple API",
    "_fields": "namedtuple API",
    "_make": "namedtuple API",
}

#: Modules (paths inside the package) that the reach-in rule skips, and why.
EXEMPT_PRIVATE: dict[str, str] = {
    # Issue 9, point 4: wsproto exposes no public API for what the core
    # needs (frame decoding, masking, the deflate state), so every use of
    # its private attributes is fenced into this one module, each with a
    # comment, under a pinned wsproto version and a job that tests the next
    # release. The rule would flag exactly those fenced uses.
    "_core/frames.py": "the one module allowed to use wsproto internals",
}


# ----------------------------------------------------------------------
# Reading a package


@dataclasses.dataclass(frozen=True)
class Module:
    name: str  # dotted, e.g. "wskit._core.http"
    path: pathlib.Path
    relpath: str  # inside the package, e.g. "_core/http.py"
    is_package: bool  # an __init__.py
    tree: ast.Module
    lines: int


def read_package(root: pathlib.Path) -> dict[str, Module]:
    """Every ``.py`` file under ``root`` (a package directory), by dotted name."""
    modules: dict[str, Module] = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        parts = [root.name, *rel.parts[:-1]]
        is_package = rel.name == "__init__.py"
        if not is_package:
            parts.append(rel.stem)
        source = path.read_text(encoding="utf-8")
        name = ".".join(parts)
        modules[name] = Module(name, path, rel.as_posix(), is_package,
                               ast.parse(source, filename=str(path)),
                               len(source.splitlines()))
    return modules


def _resolve_relative(module: Module, level: int, target: str | None) -> str:
    """The absolute name of ``from <level dots><target> import ...`` in ``module``."""
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    for _ in range(level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{target}" if target else package


def _known(name: str, modules: dict[str, Module]) -> str | None:
    """``name`` or its longest prefix that is a module of the package."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


# ----------------------------------------------------------------------
# a. Import cycles


Graph = dict[str, dict[str, list[int]]]  # module -> imported module -> line numbers


def import_graph(modules: dict[str, Module]) -> Graph:
    """Which module of the package imports which, with the lines that do."""
    graph: Graph = {name: {} for name in modules}
    for module in modules.values():
        edges = graph[module.name]
        for node in ast.walk(module.tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = (_resolve_relative(module, node.level, node.module) if node.level
                        else node.module or "")
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in modules else base)
            for target in targets:
                found = _known(target, modules)
                # A self-edge (a package __init__ importing a name from
                # itself) is no dependency on anything else.
                if found is not None and found != module.name:
                    assert isinstance(node, (ast.Import, ast.ImportFrom))
                    edges.setdefault(found, []).append(node.lineno)
    return graph


def import_cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan),
    each sorted, sorted by their first member."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph[node]:
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def describe_cycle(component: list[str], graph: Graph) -> str:
    members = set(component)
    edges = [f"    {src} -> {dst} (line {', '.join(map(str, lines))})"
             for src in component for dst, lines in sorted(graph[src].items())
             if dst in members]
    return " <-> ".join(component) + "\n" + "\n".join(edges)


# ----------------------------------------------------------------------
# b. Sizes


def oversize(modules: dict[str, Module], max_module: int = MAX_MODULE_LINES,
             max_class: int = MAX_CLASS_LINES) -> list[str]:
    """``"relpath: N lines"`` for each module over ``max_module`` lines and
    ``"relpath:Class: N lines"`` for each class (nested ones too) over ``max_class``."""
    found: list[str] = []
    for module in modules.values():
        if module.lines > max_module:
            found.append(f"{module.relpath}: {module.lines} lines")
        for node in ast.walk(module.tree):
            if isinstance(node, ast.ClassDef):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                assert node.end_lineno is not None
                size = node.end_lineno - first + 1
                if size > max_class:
                    found.append(f"{module.relpath}:{node.name}: {size} lines")
    return sorted(found)


# ----------------------------------------------------------------------
# c. Private reach-ins


def _is_private(name: str) -> bool:
    return name.startswith("_") and name.strip("_") != "" and not name.endswith("__")


def _slot_names(value: ast.expr) -> list[str]:
    if isinstance(value, ast.Constant) and isinstance(value.value, str):
        return [value.value]
    if isinstance(value, (ast.Tuple, ast.List, ast.Set)):
        return [elt.value for elt in value.elts
                if isinstance(elt, ast.Constant) and isinstance(elt.value, str)]
    return []


def _targets(node: ast.AST) -> list[ast.expr]:
    if isinstance(node, ast.Assign):
        return list(node.targets)
    if isinstance(node, (ast.AnnAssign, ast.AugAssign)):
        return [node.target]
    return []


def _flatten(target: ast.expr) -> list[ast.expr]:
    if isinstance(target, (ast.Tuple, ast.List)):
        return [leaf for elt in target.elts for leaf in _flatten(elt)]
    if isinstance(target, ast.Starred):
        return _flatten(target.value)
    return [target]


def defined_privates(tree: ast.Module) -> set[str]:
    """The private names a module defines for attribute access (see the docstring)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        if isinstance(node, ast.ClassDef):
            for stmt in node.body:
                for target in (t for st in _targets(stmt) for t in _flatten(st)):
                    if isinstance(target, ast.Name):
                        names.add(target.id)
                        if target.id == "__slots__":
                            value = getattr(stmt, "value", None)
                            if isinstance(value, ast.expr):
                                names.update(_slot_names(value))
        for target in (t for st in _targets(node) for t in _flatten(st)):
            if (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                    and target.value.id in ("self", "cls")):
                names.add(target.attr)
    return {name for name in names if _is_private(name)}


def _super_reach_ins(tree: ast.Module) -> set[int]:
    """The ``super()._name`` nodes in classes none of whose bases is a class of
    this module: the name then comes from another module, even when this
    module defines (overrides) it too."""
    local = {node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
    found: set[int] = set()
    for cls in (node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)):
        if any(isinstance(base, ast.Name) and base.id in local for base in cls.bases):
            continue
        for node in ast.walk(cls):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Call)
                    and isinstance(node.value.func, ast.Name)
                    and node.value.func.id == "super"):
                found.add(id(node))
    return found


def _annotation_names(annotation: ast.expr) -> set[str]:
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        try:
            annotation = ast.parse(annotation.value, mode="eval").body
        except SyntaxError:
            return set()
    return {node.id if isinstance(node, ast.Name) else node.attr
            for node in ast.walk(annotation) if isinstance(node, (ast.Name, ast.Attribute))}


def _foreign_param_reach_ins(tree: ast.Module) -> set[int]:
    """The ``param._name`` nodes where ``param`` is annotated with types none
    of which is defined in this module (a class or a type alias). ``object``
    and ``Any`` say nothing of where the value comes from (``__eq__(self,
    other: object)`` narrows with ``isinstance``), so they count as local."""
    local = {node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
    local |= {target.id for stmt in tree.body for target in _targets(stmt)
              if isinstance(target, ast.Name)}
    local |= {"object", "Any"}
    found: set[int] = set()
    for func in ast.walk(tree):
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        args = func.args
        foreign = {arg.arg for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]
                   if arg.annotation is not None
                   and not _annotation_names(arg.annotation) & local}
        for node in ast.walk(func):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in foreign):
                found.add(id(node))
    return found


def private_reach_ins(modules: dict[str, Module],
                      exempt: dict[str, str] | None = None,
                      allowed: dict[str, str] | None = None) -> list[str]:
    """``"relpath:line: what"`` for each private name a module uses but does not define."""
    exempt = EXEMPT_PRIVATE if exempt is None else exempt
    allowed = ALLOWED_PRIVATE if allowed is None else allowed
    found: list[str] = []
    for module in modules.values():
        if module.relpath in exempt:
            continue
        own = defined_privates(module.tree)
        inherited = _super_reach_ins(module.tree) | _foreign_param_reach_ins(module.tree)
        for node in ast.walk(module.tree):
            if (isinstance(node, ast.Attribute) and _is_private(node.attr)
                    and node.attr not in allowed
                    and (node.attr not in own or id(node) in inherited)):
                found.append(f"{module.relpath}:{node.lineno}: "
                             f"{ast.unparse(node.value)}.{node.attr}")
            elif isinstance(node, ast.ImportFrom):
                base = (_resolve_relative(module, node.level, node.module) if node.level
                        else node.module or "")
                for alias in node.names:
                    if (_is_private(alias.name) and f"{base}.{alias.name}" not in modules
                            and alias.name not in allowed):
                        found.append(f"{module.relpath}:{node.lineno}: "
                                     f"from {base} import {alias.name}")
    return sorted(found, key=_location)


def _location(entry: str) -> tuple[str, int, str]:
    path, line, what = entry.split(":", 2)
    return path, int(line), what


# ----------------------------------------------------------------------
# The rules, on wskit


def test_no_import_cycle() -> None:
    graph = import_graph(read_package(PACKAGE))
    cycles = import_cycles(graph)
    assert not cycles, "import cycles in wskit/:\n" + "\n".join(
        describe_cycle(component, graph) for component in cycles)


def test_no_oversize_module_or_class() -> None:
    found = oversize(read_package(PACKAGE))
    assert not found, (f"over {MAX_MODULE_LINES} lines (module) or {MAX_CLASS_LINES} "
                       "lines (class):\n" + "\n".join(found))


def test_no_private_reach_in() -> None:
    found = private_reach_ins(read_package(PACKAGE))
    assert not found, (f"{len(found)} reach-ins into private names defined elsewhere:\n"
                       + "\n".join(found))


def test_the_checks_see_the_whole_package() -> None:
    # A checker that found no file would pass every rule.
    modules = read_package(PACKAGE)
    assert {"wskit", "wskit.testing"} <= set(modules)
    assert len(modules) >= 10


# ----------------------------------------------------------------------
# Control cases: each checker, on a synthetic package, reports exactly
# what was planted.


def _write(root: pathlib.Path, files: dict[str, str]) -> pathlib.Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def test_control_import_cycles(tmp_path: pathlib.Path) -> None:
    pkg = _write(tmp_path / "pkg", {
        "__init__.py": "from .a import A\nfrom . import clean\n",
        # a -> b -> c -> a, through three spellings of an import
        "a.py": "from . import b\n",
        "b.py": "import pkg.c\n",
        "c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                "    from .a import A\n",
        # sub.x <-> sub (a name from the package, not a submodule) in a function
        "sub/__init__.py": "from .x import X\n",
        "sub/x.py": "def f():\n    from pkg.sub import helper\n",
        # clean imports a submodule through its package: clean -> sub.y only
        "clean.py": "from .sub import y\nfrom .a import A\n",
        "sub/y.py": "import os\nfrom .. import a\n",
    })
    graph = import_graph(read_package(pkg))
    assert graph["pkg.clean"] == {"pkg.sub.y": [1], "pkg.a": [2]}
    assert graph["pkg.sub.y"] == {"pkg.a": [2]}
    assert import_cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"], ["pkg.sub", "pkg.sub.x"]]
    assert "pkg.c -> pkg.a (line 3)" in describe_cycle(["pkg.a", "pkg.b", "pkg.c"], graph)


def test_control_no_cycle_in_a_tree(tmp_path: pathlib.Path) -> None:
    pkg = _write(tmp_path / "pkg", {
        "__init__.py": "from .top import T\n",
        "top.py": "from ._low import L\nimport pkg._low\n",
        "_low.py": "import trio\n",
    })
    assert import_cycles(import_graph(read_package(pkg))) == []


def test_control_oversize(tmp_path: pathlib.Path) -> None:
    big_class = "class Big:\n" + "    x = 1\n" * 400  # 401 lines
    ok_class = "class Fits:\n" + "    x = 1\n" * 399  # 400 lines
    pkg = _write(tmp_path / "pkg", {
        "__init__.py": "",
        "long.py": "x = 1\n" * 601,
        "fits.py": "x = 1\n" * 600,
        "big.py": "import functools\n\n@functools.total_ordering\n" + big_class,
        "fits_class.py": ok_class,
    })
    assert oversize(read_package(pkg)) == ["big.py:Big: 402 lines", "long.py: 601 lines"]


def test_control_private_reach_ins(tmp_path: pathlib.Path) -> None:
    pkg = _write(tmp_path / "pkg", {
        "__init__.py": "from ._impl import Thing\n",
        "_impl.py": """\
            import collections

            Pair = collections.namedtuple("Pair", "a b")


            class Thing:
                __slots__ = ("_slot",)
                _level = 1

                def __init__(self) -> None:
                    self._slot = 0
                    self._state = Pair(1, 2)._replace(a=3)

                def _helper(self) -> int:
                    return self._slot + self._level + self.__class__.__name__.count("")

                def same_module(self, other: "Thing", maybe: Thing | None,
                                anything: object, alias: ThingLike) -> int:
                    return (other._helper() + other._state.a + maybe._slot
                            + anything._slot + alias._slot)


            ThingLike = Thing | int


            class Local(Thing):
                def _helper(self) -> int:
                    return super()._helper()  # the base is in this module
            """,
        "user.py": """\
            import sys
            from pkg import _impl
            from pkg._impl import Thing, _hidden

            def use(thing: Thing) -> object:
                thing._helper()
                thing._state = None
                return sys._getframe(), _impl.Thing, _


            class Binder:
                def __init__(self) -> None:
                    self._slot = None

                def bind(self, out: "_impl.Thing") -> None:
                    self._slot = out._slot  # Binder's own _slot does not make this one ours
            """,
        "override.py": """\
            import json

            class Decoder(json.JSONDecoder):
                def _scan(self) -> None:
                    return super()._scan()  # overrides, then calls json's private
            """,
        "_core/__init__.py": "",
        "_core/frames.py": "def peek(conn):\n    return conn._frame_decoder\n",
    })
    modules = read_package(pkg)
    assert private_reach_ins(modules) == [
        "override.py:5: super()._scan",
        "user.py:3: from pkg._impl import _hidden",
        "user.py:6: thing._helper",
        "user.py:7: thing._state",
        "user.py:8: sys._getframe",
        "user.py:16: out._slot",
    ]
    # Without the exemption, the fenced module is flagged like any other.
    assert "_core/frames.py:2: conn._frame_decoder" in private_reach_ins(modules, exempt={})
    # Without the allowance, namedtuple's methods are flagged.
    assert "_impl.py:12: Pair(1, 2)._replace" in private_reach_ins(modules, allowed={})
