"""The docs and the README cite only repository files that exist."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEXTS = sorted((ROOT / "docs" / "pages").rglob("*.md")) + [ROOT / "README.md"]

#: Folders the docs cite as places a command writes to, not as files in the repository.
OUTPUTS = {"benchmarks/results/gpu/"}

_REPO_PATH = re.compile(r"`((?:benchmarks|docs|examples|src|tests|\.ci)/[A-Za-z0-9_./*-]*)`")


@pytest.mark.parametrize("text", TEXTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_cited_repository_paths_exist(text):
    for path in _REPO_PATH.findall(text.read_text()):
        if path in OUTPUTS:
            continue
        assert any(ROOT.glob(path.rstrip("/"))), f"{text.name} cites `{path}`, which does not exist"


@pytest.mark.parametrize("text", TEXTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_no_design_document_is_cited(text):
    # There is no DESIGN.md in the repository: state the fact instead of citing it.
    assert "DESIGN.md" not in text.read_text()


PUBLIC_NAMESPACES = [
    "aware3d",
    "aware3d.functional",
    "aware3d.nn",
    "aware3d.models",
    "aware3d.training",
    "aware3d.data",
    "aware3d.recipes",
    "aware3d.viz",
]


@pytest.mark.parametrize("namespace", PUBLIC_NAMESPACES)
def test_every_public_namespace_has_an_api_page_in_the_nav(namespace):
    page = "api/" + (namespace.removeprefix("aware3d.") if "." in namespace else namespace) + ".md"
    text = (ROOT / "docs" / "pages" / page).read_text()
    assert re.search(rf"^::: {re.escape(namespace)}$", text, re.MULTILINE), page
    assert f": {page}" in (ROOT / "docs" / "mkdocs.yml").read_text(), f"{page} is not in the nav"
