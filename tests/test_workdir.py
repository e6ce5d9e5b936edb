"""Tests run in their own temporary folder and leave nothing in the checkout."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_test_runs_in_its_tmp_path(tmp_path):
    assert Path.cwd() == tmp_path  # conftest's autouse `_run_in_tmp_path`
    Path("written.txt").write_text("a relative path lands here")
    assert (tmp_path / "written.txt").is_file()
    assert not (ROOT / "written.txt").exists()


def test_no_stray_ply_files_at_the_repository_root():
    stray = [
        path.name
        for path in ROOT.iterdir()
        if path.is_file() and path.open("rb").read(4) in (b"ply\n", b"ply\r")
    ]
    assert not stray, f"PLY files at the repository root (written by a test?): {stray}"
