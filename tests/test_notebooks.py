"""The example notebooks run top to bottom (executed with nbclient, as a user would), and the
outputs stored in them are the outputs a fresh run gives (``python docs/execute_notebooks.py``
refreshes them)."""

import base64
import io
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient
from PIL import Image

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))

_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def _execute(path, workdir):
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    )
    client.execute()
    return notebook


def _texts_match(fresh: str, stored: str) -> bool:
    """Same text, numbers equal within a relative 1e-3 (float32 sums in another order)."""
    if _NUMBER.sub("#", fresh) != _NUMBER.sub("#", stored):
        return False
    pairs = zip(_NUMBER.findall(fresh), _NUMBER.findall(stored), strict=True)
    return all(np.isclose(float(a), float(b), rtol=1e-3, atol=1e-6) for a, b in pairs)


def _png(data: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"), np.float64)


def _merged_streams(outputs):
    """Outputs with consecutive writes to one stream joined (the kernel splits them by timing)."""
    merged = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if (
            output["output_type"] == "stream"
            and previous is not None
            and previous["output_type"] == "stream"
            and previous["name"] == output["name"]
        ):
            merged[-1] = {**previous, "text": "".join(previous["text"]) + "".join(output["text"])}
        else:
            merged.append(output)
    return merged


def _mismatches(cell_index, fresh, stored):
    fresh, stored = _merged_streams(fresh), _merged_streams(stored)
    if [o["output_type"] for o in fresh] != [o["output_type"] for o in stored]:
        return [f"cell {cell_index}: output kinds {[o['output_type'] for o in stored]} stored, "
                f"{[o['output_type'] for o in fresh]} now"]  # fmt: skip
    problems = []
    for new, old in zip(fresh, stored, strict=True):
        if new["output_type"] == "stream":
            if not _texts_match("".join(new["text"]), "".join(old["text"])):
                problems.append(f"cell {cell_index}: stored {old['text']!r}, now {new['text']!r}")
            continue
        data_new, data_old = new.get("data", {}), old.get("data", {})
        if "image/png" in data_new or "image/png" in data_old:
            if "image/png" not in data_new or "image/png" not in data_old:
                problems.append(f"cell {cell_index}: an image is stored or made, not both")
                continue
            image_new, image_old = _png(data_new["image/png"]), _png(data_old["image/png"])
            if image_new.shape != image_old.shape:
                problems.append(f"cell {cell_index}: image {image_old.shape} -> {image_new.shape}")
            elif np.abs(image_new - image_old).mean() > 2.0:  # grey levels, of 255
                problems.append(f"cell {cell_index}: the stored image is not what the cell draws")
        elif "text/plain" in data_new:
            text_new, text_old = "".join(data_new["text/plain"]), "".join(data_old["text/plain"])
            if not _texts_match(text_new, text_old):
                problems.append(f"cell {cell_index}: stored {text_old!r}, now {text_new!r}")
    return problems


def test_the_three_tutorials_exist():
    names = {path.stem for path in NOTEBOOKS}
    assert {"quickstart", "hierarchy", "background_compositing"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
@pytest.mark.slow
def test_notebook_executes_and_its_stored_outputs_are_fresh(path, tmp_path):
    stored = nbformat.read(path, as_version=4)
    fresh = _execute(path, tmp_path)
    code = [(i, c) for i, c in enumerate(fresh.cells) if c.cell_type == "code"]
    errors = [o for _, c in code for o in c.outputs if o.output_type == "error"]
    assert not errors
    problems = []
    for index, cell in code:
        problems += _mismatches(index, cell.outputs, stored.cells[index].get("outputs", []))
    assert not problems, (
        "stale outputs; run `python docs/execute_notebooks.py "
        + path.name
        + "`:\n"
        + "\n".join(problems)
    )


def test_the_comparison_catches_stale_numbers_and_text():
    assert _texts_match("672 Gaussians; 8 codes, 0.66695", "672 Gaussians; 8 codes, 0.66690")
    assert not _texts_match("672 Gaussians; 8 codes", "672 Gaussians; 7 codes")
    assert not _texts_match("opacity 0.667", "opacity 0.5")
    assert not _texts_match("8 style codes", "8 codes")
