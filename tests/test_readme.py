"""README.md works as the package's long description on a package index.

A package index shows the README out of the repository, so every link and image must be an
absolute URL, and the component table's import paths must be real.
"""

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS_PAGES = ROOT / "docs" / "pages"
DOCS_SITE = "https://aware3d.readthedocs.io/en/latest/"

_CODE_BLOCK = re.compile(r"^```.*?^```", re.S | re.M)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.M)
_HTML = re.compile(r"""<(?:a|img|source)\b[^>]*?\b(?:href|src)\s*=\s*["']([^"']+)["']""", re.I)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _prose() -> str:
    """README without code blocks and inline code, where link syntax means nothing."""
    return _INLINE_CODE.sub("", _CODE_BLOCK.sub("", README.read_text()))


def readme_targets() -> list[str]:
    text = _prose()
    return [
        match.group(1)
        for pattern in (_INLINE_LINK, _REFERENCE, _HTML)
        for match in pattern.finditer(text)
    ]


def test_readme_has_links_and_images():
    targets = readme_targets()
    assert any(target.endswith(".png") for target in targets), targets
    assert any(target.startswith(DOCS_SITE) for target in targets), targets


def test_readme_links_and_images_are_absolute():
    relative = [t for t in readme_targets() if not t.startswith("https://")]
    assert not relative, f"relative links break on a package index: {relative}"


def test_readme_links_into_the_docs_site_exist():
    """``<site>/<page>/`` must be a page and ``<site>/assets/<file>`` a file of the docs."""
    for target in readme_targets():
        if not target.startswith(DOCS_SITE):
            continue
        path = target.removeprefix(DOCS_SITE).split("#")[0]
        if path == "":
            candidates = [DOCS_PAGES / "index.md"]
        elif path.endswith("/"):
            page = path.rstrip("/")
            candidates = [DOCS_PAGES / f"{page}.md", DOCS_PAGES / f"{page}.ipynb"]
        else:
            candidates = [DOCS_PAGES / path]
        assert any(c.is_file() for c in candidates), f"{target}: none of {candidates} exists"


def component_table() -> list[tuple[str, list[str]]]:
    """``(module, names)`` of every row of the table under ``## Components``."""
    text = README.read_text()
    section = text.split("\n## Components\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    assert header[:2] == ["import from", "names"], header
    table = []
    for row in rows[2:]:  # skip the header and the |---| line
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        module = cells[0].strip("`")
        names = re.findall(r"`([^`]+)`", cells[1])
        assert names, row
        for name in names:
            assert _IDENTIFIER.fullmatch(name), f"{name!r} in {row!r} is not a plain name"
        table.append((module, names))
    return table


ROWS = component_table()


def test_component_table_lists_the_decoder_presets_under_nn():
    table: dict[str, list[str]] = {}
    for module, names in ROWS:
        table.setdefault(module, []).extend(names)
    assert {"gsgan_decoder_256", "gsgan_decoder_512", "small_decoder"} <= set(table["aware3d.nn"])


@pytest.mark.parametrize(("module", "names"), ROWS, ids=[f"{m}:{names[0]}" for m, names in ROWS])
def test_component_table_names_import_from_where_it_says(module, names):
    imported = importlib.import_module(module)
    missing = [name for name in names if not hasattr(imported, name)]
    assert not missing, f"README says `from {module} import ...` works for {missing}"
    exported = getattr(imported, "__all__", None)
    if exported is not None:
        assert not set(names) - set(exported), set(names) - set(exported)
