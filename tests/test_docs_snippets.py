"""The code on the documentation pages runs as written.

Every ```python block of every page under ``docs/pages/`` is executed on its own, in a fresh
namespace and a temporary working directory, so each block must be a complete example with its
own imports. Blocks that are not meant to run (shell sessions, output, file formats) use another
fence language (```bash, ```text, ```json).
"""

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs" / "pages"
PAGES = sorted(path for path in DOCS.rglob("*.md") if path.is_file())

#: Pages that must show at least one runnable example.
PAGES_WITH_EXAMPLES = {
    "background.md",
    "compositing.md",
    "conventions.md",
    "data.md",
    "decoder.md",
    "getting-started.md",
    "losses.md",
    "rasterize.md",
    "training.md",
}

#: Fence languages allowed on the pages; only ``python`` is executed.
FENCE_LANGUAGES = {"python", "bash", "text", "json"}

_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<info>[^\n`]*)$", re.M)


def fenced_blocks(text: str) -> list[tuple[str, int, str]]:
    """``(language, line number of the first code line, code)`` of every fenced block."""
    blocks = []
    fences = list(_FENCE.finditer(text))
    if len(fences) % 2:
        raise AssertionError("unbalanced ``` fences")
    for opening, closing in zip(fences[::2], fences[1::2], strict=True):
        if closing.group("info").strip():
            raise AssertionError(
                f"line {text.count(chr(10), 0, closing.start()) + 1}: a fence that closes a "
                f"block must be a bare ```, got {closing.group(0)!r}"
            )
        language = opening.group("info").strip().split(" ")[0]
        code = text[opening.end() + 1 : closing.start()]
        indent = opening.group("indent")
        if indent:
            code = "\n".join(line.removeprefix(indent) for line in code.splitlines())
        first_line = text.count("\n", 0, opening.end()) + 2
        blocks.append((language, first_line, code))
    return blocks


def python_blocks(path: Path) -> list[tuple[int, str]]:
    return [
        (line, code) for lang, line, code in fenced_blocks(path.read_text()) if lang == "python"
    ]


def test_pages_found():
    names = {path.name for path in PAGES}
    assert names >= PAGES_WITH_EXAMPLES, PAGES_WITH_EXAMPLES - names


@pytest.mark.parametrize("page", PAGES, ids=lambda path: str(path.relative_to(DOCS)))
def test_fences_declare_a_known_language(page):
    for language, line, _ in fenced_blocks(page.read_text()):
        assert language in FENCE_LANGUAGES, (
            f"{page.name}:{line}: fence language {language!r}; use ```python for code that runs "
            f"or one of {sorted(FENCE_LANGUAGES - {'python'})} for text that does not"
        )


#: Pages whose examples take more than a few seconds (run in the full suite only).
SLOW_PAGES = {"decoder.md", "own-generator.md", "background.md", "training.md", "models.md"}


@pytest.mark.parametrize(
    "page",
    [pytest.param(p, marks=pytest.mark.slow) if p.name in SLOW_PAGES else p for p in PAGES],
    ids=lambda path: str(path.relative_to(DOCS)),
)
def test_python_blocks_run(page, tmp_path, monkeypatch):
    blocks = python_blocks(page)
    if str(page.relative_to(DOCS)) in PAGES_WITH_EXAMPLES:
        assert blocks, f"{page.name} should show a runnable ```python example"
    for index, (line, code) in enumerate(blocks):
        workdir = tmp_path / f"block{index}"
        workdir.mkdir()
        monkeypatch.chdir(workdir)
        # Pad with blank lines so tracebacks point at the page's own line numbers.
        source = "\n" * (line - 1) + code
        namespace: dict = {"__name__": f"docs_{page.stem.replace('-', '_')}_{index}"}
        exec(compile(source, str(page), "exec"), namespace)
