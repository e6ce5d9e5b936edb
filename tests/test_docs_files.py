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
