"""The documentation site builds with warnings as errors, and nothing is lost.

- ``mkdocs build --strict`` (mkdocs.yml's ``validation:`` makes a broken
  link or anchor, a page missing from the nav and a nav entry without a page
  warnings, and ``--strict`` makes every warning an error; a docstring the
  API reference cannot render warns too);
- every page of ``docs/`` is reachable by following links from the built
  site's front page;
- the API reference renders every name of ``wskit.__all__``;
- the strict settings really refuse a broken link, an orphan page and a
  missing anchor (checked on small throwaway sites);
- the systemd unit shown in the how-to passes ``systemd-analyze verify``.
"""

from __future__ import annotations

import dataclasses
import html.parser
import os
import pathlib
import re
import shutil
import subprocess
import sys
import urllib.parse

import pytest
import yaml

import wskit

# The site build takes ~15 s on a busy 2-core machine.
pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
#: The site has at least this many pages: a build that loses most of them fails.
MIN_PAGES = 20


def _mkdocs(config: pathlib.Path, site: pathlib.Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(config),
            "--site-dir",
            str(site),
        ],
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("site")
    done = _mkdocs(ROOT / "mkdocs.yml", out)
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    return out


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if name == "href" and tag == "a":
                self.hrefs.append(value)
            elif name == "id":
                self.ids.add(value)


def _parse(page: pathlib.Path) -> _Links:
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def _reachable(site: pathlib.Path) -> set[pathlib.Path]:
    """Every HTML page reached by following links from index.html."""
    seen: set[pathlib.Path] = set()
    todo = [site / "index.html"]
    while todo:
        page = todo.pop()
        if page in seen or not page.is_file():
            continue
        seen.add(page)
        for href in _parse(page).hrefs:
            parts = urllib.parse.urlsplit(href)
            if parts.scheme or parts.netloc or not parts.path:
                continue
            target = (page.parent / urllib.parse.unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            if target.suffix == ".html" and site.resolve() in target.parents:
                todo.append(target)
    return seen


def _built_page(site: pathlib.Path, md: pathlib.Path) -> pathlib.Path:
    """Where mkdocs (use_directory_urls) writes the page for docs/<md>."""
    rel = md.relative_to(DOCS).with_suffix("")
    if rel.name in ("index", "README"):
        return (site / rel.parent / "index.html").resolve()
    return (site / rel / "index.html").resolve()


def _pages() -> list[pathlib.Path]:
    return sorted(DOCS.rglob("*.md"))


def test_every_page_is_reachable_from_the_front_page(site: pathlib.Path) -> None:
    pages = _pages()
    assert len(pages) >= MIN_PAGES, pages
    reached = _reachable(site)
    missing = [str(p.relative_to(ROOT)) for p in pages if _built_page(site, p) not in reached]
    assert not missing, f"not reachable from index.html: {missing}"


def _nav_files(nav: object) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [f for item in nav for f in _nav_files(item)]
    if isinstance(nav, dict):
        return [f for value in nav.values() for f in _nav_files(value)]
    raise AssertionError(f"unexpected nav entry {nav!r}")


def test_the_nav_lists_every_page_once() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    listed = _nav_files(config["nav"])
    assert len(listed) == len(set(listed)), "a page is in the nav twice"
    assert sorted(listed) == sorted(p.relative_to(DOCS).as_posix() for p in _pages())


def test_the_reference_renders_every_public_name(site: pathlib.Path) -> None:
    source = (DOCS / "reference" / "api.md").read_text(encoding="utf-8")
    directives = set(re.findall(r"^::: (wskit\.\w+)\s*$", source, re.M))
    public = {f"wskit.{name}" for name in wskit.__all__ if name != "__version__"}
    assert public <= directives, (
        f"missing from docs/reference/api.md: {sorted(public - directives)}"
    )
    ids = _parse(site / "reference" / "api" / "index.html").ids
    assert public <= ids, f"not rendered: {sorted(public - ids)}"
    assert "wskit.testing" in ids and "wskit.testing.connect" in ids
    # Settings fields are documented with "#:" comments (docs/_ext/griffe_rst.py).
    fields = {f"wskit.Settings.{f.name}" for f in dataclasses.fields(wskit.Settings)}
    assert fields <= ids, f"Settings fields not rendered: {sorted(fields - ids)}"


def test_docstrings_render_without_rest_markup(site: pathlib.Path) -> None:
    # docs/_ext/griffe_rst.py turns :class:`X` roles and "::" blocks into Markdown.
    text = (site / "reference" / "api" / "index.html").read_text(encoding="utf-8")
    assert not re.search(r":(class|meth|func|attr|data|mod):", text)


# ----------------------------------------------------------------------
# The strict settings refuse what they should (small sites, same rules)


_BROKEN = {
    "broken link": {"index.md": "# Home\n\n[gone](nowhere.md)\n", "a.md": "# A\n"},
    "missing anchor": {"index.md": "# Home\n\n[a](a.md#no-such-heading)\n", "a.md": "# A\n"},
    "page not in nav": {
        "index.md": "# Home\n\n[a](a.md)\n",
        "a.md": "# A\n",
        "orphan.md": "# Orphan\n",
    },
    "nav entry without page": {
        "index.md": "# Home\n\n[a](a.md)\n",
        "a.md": "# A\n",
        "-nav": "ghost.md",
    },
}


@pytest.mark.parametrize("case", sorted(_BROKEN))
def test_strict_build_refuses(case: str, tmp_path: pathlib.Path) -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    files = dict(_BROKEN[case])
    ghost = files.pop("-nav", None)
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in files.items():
        (docs / name).write_text(text, encoding="utf-8")
    nav: list[object] = [{"Home": "index.md"}, {"A": "a.md"}]
    if ghost:
        nav.append({"Ghost": ghost})
    small = {"site_name": "t", "docs_dir": "docs", "validation": config["validation"], "nav": nav}
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(small), encoding="utf-8")
    done = _mkdocs(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert done.returncode != 0, f"{case}: the strict build passed\n{done.stderr}"
    # The same site without the fault builds: the failure is the fault's.
    for name in ("orphan.md",):
        (docs / name).unlink(missing_ok=True)
    (docs / "index.md").write_text("# Home\n\n[a](a.md)\n", encoding="utf-8")
    small["nav"] = [{"Home": "index.md"}, {"A": "a.md"}]
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(small), encoding="utf-8")
    fixed = _mkdocs(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert fixed.returncode == 0, fixed.stderr


# ----------------------------------------------------------------------
# The systemd unit of docs/howto/systemd.md


def test_the_systemd_unit_verifies(tmp_path: pathlib.Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None, (
        "systemd-analyze is needed (bash .ci/apt installs the systemd package)"
    )
    page = (DOCS / "howto" / "systemd.md").read_text(encoding="utf-8")
    units = re.findall(r"```ini\n(.*?)```", page, re.S)
    assert len(units) == 1
    unit = units[0]
    assert "ExecStart=/srv/chat/.venv/bin/wskit serve " in unit
    # The unit names /srv/chat; verify it against a copy of that tree whose
    # wskit is the real one, so that systemd can check the command exists.
    app = tmp_path / "srv-chat"
    (app / ".venv" / "bin").mkdir(parents=True)
    wskit_bin = pathlib.Path(sys.executable).parent / "wskit"
    assert wskit_bin.is_file()
    (app / ".venv" / "bin" / "wskit").symlink_to(wskit_bin)
    path = tmp_path / "wskit-chat.service"
    path.write_text(unit.replace("/srv/chat", str(app)), encoding="utf-8")
    done = subprocess.run(
        [analyze, "verify", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert str(path) not in done.stdout + done.stderr, (
        done.stdout + done.stderr
    )  # no "unknown key" notes


# ----------------------------------------------------------------------
# The README's links into the docs (read on GitHub or PyPI, not by mkdocs)


def test_the_readme_links_resolve() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = [t for t in re.findall(r"\]\(([^)\s]+)\)", readme) if "://" not in t]
    assert len(targets) >= 10, targets
    missing = [t for t in targets if not (ROOT / t.split("#")[0]).exists()]
    assert not missing, missing
    linked = {t.split("#")[0] for t in targets}
    pages = {p.relative_to(ROOT).as_posix() for p in _pages()}
    assert "docs/tutorial.md" in linked and "docs/reference/api.md" in linked
    assert linked & pages, "the README links into docs/"
