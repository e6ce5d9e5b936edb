"""The code on the getting-started page runs as written."""

import re
from pathlib import Path

PAGE = Path(__file__).resolve().parents[1] / "docs" / "pages" / "getting-started.md"


def test_getting_started_snippets_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the page writes scene.ply
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)
    assert len(blocks) >= 3
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(PAGE), "exec"), namespace)
    assert (tmp_path / "scene.ply").is_file()
    assert tuple(namespace["out"].features.shape) == (1, 4, 128, 128, 3)
