"""``load_released``'s frame and ``aware3d convert``: refusals that need no family converter.

The families' conversions themselves are tested in ``test_released_gsgan.py``,
``test_released_triplane.py`` and ``test_released_discriminator.py``.
"""

import pytest
import torch

from aware3d.cli import main
from aware3d.models import ReleasedModelError, load_released
from aware3d.models._persistence import NetworkPickleError
from aware3d.recipes import convert_released, is_converted, load_converted
from persistence_writer import Persistent, easydict, write


def snapshot(**networks) -> dict:
    return dict(training_set_kwargs=dict(path="data.zip", resolution=64), **networks)


def unknown_generator() -> Persistent:
    G = Persistent("StyleGAN3Generator", z_dim=8, c_dim=0, w_dim=8, img_resolution=64,
                   img_channels=3, mapping_kwargs=easydict(num_layers=2))  # fmt: skip
    G.register_parameter("w", torch.nn.Parameter(torch.randn(2, 2)))
    return G


def test_unknown_generator_class_is_named(tmp_path):
    path = write(tmp_path, snapshot(G=None, G_ema=unknown_generator(), D=None))
    with pytest.raises(ReleasedModelError, match=r"net\.pkl.*'StyleGAN3Generator'.*cannot convert"):
        load_released(path)


def test_missing_network_is_named(tmp_path):
    path = write(tmp_path, snapshot(G=unknown_generator(), D=None))
    with pytest.raises(ReleasedModelError, match=r"net\.pkl: the file has no 'G_ema' network"):
        load_released(path)
    # The suite's type-checker hook refuses the Literal first; without it, the function's message.
    with pytest.raises((TypeError, ValueError), match="network"):
        load_released(path, network="D")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "ends early"), (b"\x80\x04not a pickle at all", "not a pickle|unreadable|ends early")],
)
def test_convert_refuses_non_pickles_with_the_file_name(tmp_path, content, message):
    path = write(tmp_path, content, "broken.pkl")
    with pytest.raises(NetworkPickleError, match=message):
        convert_released(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["broken.pkl"]  # no temporary left


def test_convert_refuses_an_existing_folder_before_reading(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    missing = tmp_path / "missing.pkl"  # never opened: the folder is refused first
    with pytest.raises(FileExistsError, match="out exists; pass overwrite=True"):
        convert_released(missing, tmp_path / "out")
    with pytest.raises(FileExistsError, match="is not a converted model"):
        convert_released(missing, tmp_path / "out", overwrite=True)
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_convert_command_reports_errors_without_traceback(tmp_path, capsys):
    path = write(tmp_path, snapshot(G=None, G_ema=unknown_generator(), D=None))
    with pytest.raises(SystemExit) as exit_info:
        main(["convert", str(path), str(tmp_path / "out")])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("aware3d convert: error: ") and "StyleGAN3Generator" in err
    with pytest.raises(SystemExit) as exit_info:
        main(["convert", str(tmp_path / "missing.pkl"), str(tmp_path / "out")])
    assert exit_info.value.code == 2  # argparse's usage error
    assert not (tmp_path / "out").exists()


def test_load_converted_refuses_other_folders(tmp_path):
    assert not is_converted(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a converted released model"):
        load_converted(tmp_path)
    (tmp_path / "converted.json").write_text('{"format": "something-else", "version": 1}')
    with pytest.raises(ValueError, match="not a version-1 'aware3d-converted-released' file"):
        load_converted(tmp_path)
