"""``load_released``'s frame and ``aware3d convert``: refusals that need no family converter.

The families' conversions themselves are tested in ``test_released_gsgan.py``,
``test_released_triplane.py`` and ``test_released_discriminator.py``.
"""

import math

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


@pytest.fixture(scope="module")
def released_pickle(tmp_path_factory):
    """A snapshot with GSGAN's small released G (and G_ema) and EG3D's small released D."""
    from persistence_writer import write
    from test_released_discriminator import FIXTURE, released_tree
    from test_released_gsgan import _build, _decode, _fixture, released_modules

    G = _build(released_modules())
    d = torch.load(FIXTURE, weights_only=True)
    D = released_tree(d["class_name"], {**d["common"], **d["init_kwargs"]}, d["classes"],
                      d["parameters"], d["buffers"])  # fmt: skip
    kwargs = _decode(_fixture()["training_set_kwargs"], {})
    snapshot = dict(training_set_kwargs=kwargs, G=G, D=D, G_ema=G, augment_pipe=None)
    return write(tmp_path_factory.mktemp("released"), snapshot, "network-snapshot-000000.pkl")


def test_convert_then_load_render_and_refuse_to_overwrite(released_pickle, tmp_path, capsys):
    out = tmp_path / "converted"
    main(["convert", str(released_pickle), str(out)])
    printed = capsys.readouterr().out
    assert "gsgan model at" in printed and "generator_ema <- G_ema" in printed
    assert "discriminator <- D" in printed
    names = sorted(p.name for p in out.iterdir())
    assert names == ["converted.json", "discriminator.safetensors", "generator.safetensors",
                     "generator_ema.safetensors"]  # fmt: skip
    assert [p.name for p in tmp_path.iterdir()] == ["converted"]  # no temporary left
    assert is_converted(out)

    direct = load_released(released_pickle)
    model = load_converted(out, generator=True, discriminator=True)
    assert model.family == "gsgan" and model.info["source"]["file"] == released_pickle.name
    for ours, theirs in zip(model.generator_ema.state_dict().values(),
                            direct.state_dict().values(), strict=True):  # fmt: skip
        assert torch.equal(ours, theirs)
    assert model.generator is not None and model.discriminator is not None

    with pytest.raises(SystemExit) as exit_info:  # an existing folder is refused
        main(["convert", str(released_pickle), str(out)])
    assert exit_info.value.code == 1 and "--overwrite" in capsys.readouterr().err
    main(["convert", str(released_pickle), str(out), "--overwrite", "--no-discriminator"])
    assert not (out / "discriminator.safetensors").exists()
    assert load_converted(out, discriminator=True).discriminator is None


@pytest.fixture(scope="module")
def converted(released_pickle, tmp_path_factory):
    """``released_pickle`` converted once (generators only), for the readers' tests."""
    out = tmp_path_factory.mktemp("converted") / "model"
    convert_released(released_pickle, out, discriminator=False)
    return out


def test_render_reads_a_converted_folder(converted, tmp_path):
    from aware3d.recipes import evaluate_checkpoint, render_checkpoint

    written = render_checkpoint(converted, tmp_path / "render", count=1)
    assert written["grid"].is_file() and written["turntable"].is_file()
    with pytest.raises(ValueError, match="converted released model: pass its data set"):
        evaluate_checkpoint(converted, data=None)


def test_invert_reads_a_converted_folder(converted, tmp_path):
    """``aware3d invert`` on a converted GSGAN model: the photo resized, the outputs written.

    Pivotal tuning is tested with the demo generator (``test_inversion_cli.py``).
    """
    import json

    import numpy as np
    from PIL import Image

    resolution = load_converted(converted).resolution
    pixels = np.random.default_rng(0).integers(0, 255, (24, 24, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "photo.png")
    main(["invert", str(tmp_path / "photo.png"), "--checkpoint", str(converted),
          "--camera", "yaw=5", "--steps", "2", "--frames", "1",
          "--out", str(tmp_path / "inverted"), "--no-progress"])  # fmt: skip
    folder = tmp_path / "inverted" / "photo"
    for name in ("latent.safetensors", "figure.png", "scene.ply"):
        assert (folder / name).stat().st_size > 0, name
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["resolution"] == resolution and math.isfinite(metrics["psnr"])
    assert metrics["camera"]["refined"] == ["yaw", "pitch"]
