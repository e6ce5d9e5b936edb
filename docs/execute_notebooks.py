"""Executes the example notebooks and stores their outputs: ``python docs/execute_notebooks.py``.

Run it after changing a notebook or anything it shows; ``tests/test_notebooks.py`` executes every
notebook again and fails when its stored outputs no longer match (numbers within a relative
1e-3, images within a few grey levels), so stale outputs cannot reach the docs. Pass notebook
paths to execute only those.
"""

import sys
import tempfile
import uuid
from pathlib import Path

import nbformat
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def execute(path: Path, workdir: Path) -> nbformat.NotebookNode:
    """The notebook at ``path`` executed top to bottom in ``workdir`` (not written anywhere)."""
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    )
    client.execute()
    return notebook


def main(paths: list[str]) -> None:
    """Executes the notebooks at `paths` (default: every example) and writes them back."""
    notebooks = [Path(p) for p in paths] or sorted(EXAMPLES.glob("*.ipynb"))
    for path in notebooks:
        with tempfile.TemporaryDirectory() as workdir:
            notebook = execute(path, Path(workdir))
        for cell in notebook.cells:
            cell.setdefault("id", uuid.uuid4().hex[:8])
        nbformat.validate(notebook)
        nbformat.write(notebook, path)
        print(f"executed {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
