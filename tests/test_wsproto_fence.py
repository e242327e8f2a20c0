"""wsproto's internals are touched in ``wskit/_core/frames.py`` only.

wsproto's semantic versioning excludes its private attributes, so every
use of them is fenced in one module (with a comment saying why) that the
newest-wsproto job (``tests/test_wsproto_latest.py``) watches.

How the scan decides, from the source alone (no types): the private names
of wsproto are those its own source uses on ``self`` or defines as methods
(``_frame_decoder``, ``_process_close``, ``_masking_key``, ...), read from
the installed wsproto. Outside ``frames.py`` a module of ``wskit`` may not

- import a private wsproto module or name (``from wsproto.x import _y``);
- read or write such a name as an attribute (``obj._compressor``), through
  ``getattr``/``setattr``/``hasattr``/``delattr`` with a literal name, or
  define it as a method, in a class derived from a wsproto class (or from a
  class of ``frames.py``) — whatever the name;
- elsewhere, the same, unless wskit binds that name itself in one of its
  own classes (``ConnectionCore._proto`` is wskit's, not wsproto's
  ``WSConnection._proto``): such a collision cannot be told apart without
  types, and is listed in :func:`test_collisions_are_wskits_own_names`.
"""

from __future__ import annotations

import ast
import pathlib

import wsproto

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "wskit"
FENCE = PACKAGE / "_core" / "frames.py"
_REFLECTION = {"getattr", "setattr", "hasattr", "delattr"}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def wsproto_private_names() -> frozenset[str]:
    """Private attributes and methods of wsproto's objects, from its source."""
    names: set[str] = set()
    for path in pathlib.Path(wsproto.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id == "self" and _private(node.attr)):
                names.add(node.attr)
            elif isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and \
                            _private(item.name):
                        names.add(item.name)
    return frozenset(names)


def _wsproto_bases(tree: ast.Module) -> set[str]:
    """Names this module imported from wsproto or from ``frames``: the bases
    that make a class one of wsproto's."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module is not None and (
            node.module.split(".")[0] == "wsproto" or node.module.split(".")[-1] == "frames"
        ):
            names.update(alias.asname or alias.name for alias in node.names)
    return names


def _derived(cls: ast.ClassDef, bases: set[str]) -> bool:
    for base in cls.bases:
        if isinstance(base, ast.Name) and base.id in bases:
            return True
        if isinstance(base, ast.Attribute) and ast.unparse(base).split(".")[0] == "wsproto":
            return True
    return False


def own_private_names(sources: list[str]) -> frozenset[str]:
    """Private names wskit binds itself, in classes of its own: assigned on
    ``self``, defined as methods, or listed in ``__slots__``."""
    names: set[str] = set()
    for source in sources:
        tree = ast.parse(source)
        bases = _wsproto_bases(tree)
        for cls in ast.walk(tree):
            if not isinstance(cls, ast.ClassDef) or _derived(cls, bases):
                continue
            for node in ast.walk(cls):
                if (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
                        and isinstance(node.value, ast.Name) and node.value.id == "self"):
                    names.add(node.attr)
                elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add(node.name)
                elif (isinstance(node, ast.Assign) and any(
                        isinstance(t, ast.Name) and t.id == "__slots__" for t in node.targets)):
                    names.update(c.value for c in ast.walk(node.value)
                                 if isinstance(c, ast.Constant) and isinstance(c.value, str))
    return frozenset(name for name in names if _private(name))


def violations(source: str, private: frozenset[str], own: frozenset[str]) -> list[str]:
    """Every place ``source`` touches wsproto's internals, as ``line: what``."""
    tree = ast.parse(source)
    bases = _wsproto_bases(tree)
    found: list[str] = []

    def visit(node: ast.AST, in_wsproto_class: bool) -> None:
        if isinstance(node, ast.ClassDef):
            in_wsproto_class = _derived(node, bases)
        allowed = frozenset() if in_wsproto_class else own
        where = getattr(node, "lineno", 0)
        if isinstance(node, ast.ImportFrom) and node.module is not None and \
                node.module.split(".")[0] == "wsproto":
            for part in node.module.split("."):
                if _private(part):
                    found.append(f"{where}: imports private module {node.module}")
            found.extend(f"{where}: imports private {node.module}.{alias.name}"
                         for alias in node.names if _private(alias.name))
        elif isinstance(node, ast.Import):
            found.extend(f"{where}: imports private module {alias.name}"
                         for alias in node.names if alias.name.split(".")[0] == "wsproto"
                         and any(_private(p) for p in alias.name.split(".")))
        elif isinstance(node, ast.Attribute) and node.attr in private and \
                node.attr not in allowed:
            found.append(f"{where}: uses wsproto's private .{node.attr}")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and \
                in_wsproto_class and node.name in private:
            found.append(f"{where}: overrides wsproto's private {node.name}()")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in _REFLECTION and len(node.args) >= 2
              and isinstance(node.args[1], ast.Constant)
              and node.args[1].value in private and node.args[1].value not in allowed):
            found.append(f"{where}: {node.func.id}() of wsproto's private {node.args[1].value}")
        for child in ast.iter_child_nodes(node):
            visit(child, in_wsproto_class)

    visit(tree, False)
    return found


def _modules() -> dict[pathlib.Path, str]:
    return {path: path.read_text(encoding="utf-8") for path in sorted(PACKAGE.rglob("*.py"))}


def _fenced_out() -> tuple[frozenset[str], frozenset[str]]:
    modules = _modules()
    private = wsproto_private_names()
    own = own_private_names([src for path, src in modules.items() if path != FENCE])
    return private, own


def test_only_frames_touches_wsproto_internals() -> None:
    private, own = _fenced_out()
    bad = {
        str(path.relative_to(ROOT)): found
        for path, source in _modules().items()
        if path != FENCE and (found := violations(source, private, own))
    }
    assert bad == {}, f"wsproto internals outside {FENCE.relative_to(ROOT)}: {bad}"


def test_the_scan_finds_the_fenced_uses() -> None:
    # Control: frames.py itself is flagged, for the uses its comments explain.
    private, own = _fenced_out()
    found = " ".join(violations(FENCE.read_text(encoding="utf-8"), private, own))
    for name in ("_frame_decoder", "_process_close", "_masking_key", "_compressor",
                 "_decompressor", "_enabled", "_inbound_compressed",
                 "_inbound_is_compressible"):
        assert name in found, name


def test_the_scan_fails_on_each_kind_of_reach_in() -> None:
    # Control: one of each kind of violation, in a made-up module.
    private, own = _fenced_out()
    source = "\n".join([
        "import wsproto._compat",
        "from wsproto.frame_protocol import _XorMaskerNull",
        "from wsproto.extensions import PerMessageDeflate",
        "class Deflate(PerMessageDeflate):",
        "    def _compressible_opcode(self, opcode): return True",
        "    def reset(self): self._proto = None",  # even a name wskit also uses
        "def decoder(proto): return proto._frame_decoder",
        "def key(masker): return getattr(masker, '_masking_key')",
    ])
    found = violations(source, private, own)
    assert [line.split(":")[0] for line in found] == ["1", "2", "5", "6", "7", "8"], found


def test_collisions_are_wskits_own_names() -> None:
    # The names wskit binds itself that wsproto happens to use too; a new
    # one must be checked by hand (is it really ours?) and added here.
    private, own = _fenced_out()
    assert private & own <= {"_accept", "_events", "_proto", "_state"}, private & own
    # Outside a wsproto class, such a name is not flagged.
    assert violations("class Mine:\n    def f(self): return self._proto\n",
                      private, own) == []
