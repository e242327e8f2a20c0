"""A griffe extension for the docs site: wskit's docstrings are reST-flavoured
(``:class:`Sender```, ``Example::`` literal blocks, for ``help()`` and IDEs);
mkdocstrings renders Markdown. Roles become inline code and ``::`` blocks
become Python code blocks, so the API reference reads cleanly without
rewriting every docstring.

Attributes are documented the Sphinx way, with ``#:`` comments above them
(every ``Settings`` field is); griffe does not read those, so this
extension turns them into the attributes' docstrings.

Loaded by ``mkdocs.yml`` (``extensions:`` of the python handler).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|func|meth|attr|data|exc|mod|obj):`~?([^`]+)`")


def markdown_of(text: str) -> str:
    """Rewrite reST roles and ``::`` literal blocks as Markdown."""
    text = _ROLE.sub(lambda m: f"`{m.group(1)}`", text)
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip().endswith("::") and i + 1 < len(lines) and not lines[i + 1].strip():
            head = line.rstrip()[:-2].rstrip()
            if head:
                out.append(head + ":")
            indent = len(line) - len(line.lstrip())
            j = i + 1
            block: list[str] = []
            while j < len(lines) and (
                not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent
            ):
                block.append(lines[j])
                j += 1
            while block and not block[-1].strip():
                block.pop()
            body = [ln for ln in block if ln.strip()]
            cut = min((len(ln) - len(ln.lstrip()) for ln in body), default=0)
            pad = " " * indent
            out += [
                "",
                pad + "```python",
                *[pad + ln[cut:] if ln.strip() else "" for ln in block[1:]],
                pad + "```",
                "",
            ]
            i = j
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


def comment_above(lines: list[str], lineno: int) -> str | None:
    """The ``#:`` comment block right above line ``lineno`` (1-based), if any."""
    found: list[str] = []
    i = lineno - 2
    while i >= 0 and lines[i].lstrip().startswith("#:"):
        found.append(lines[i].lstrip()[2:].strip())
        i -= 1
    return "\n".join(reversed(found)) or None


class RestToMarkdown(griffe.Extension):
    """Rewrites every docstring once griffe has loaded the object."""

    def on_attribute_instance(self, *, attr: griffe.Attribute, **kwargs: Any) -> None:
        if attr.docstring is None and attr.lineno is not None:
            try:
                lines = attr.lines_collection[attr.filepath]  # type: ignore[index]
            except (KeyError, TypeError):
                return
            text = comment_above(list(lines), attr.lineno)
            if text:
                attr.docstring = griffe.Docstring(markdown_of(text), parent=attr)

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown_of(obj.docstring.value)
