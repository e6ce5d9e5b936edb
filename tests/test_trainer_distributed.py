"""aware3d train under torchrun (2 CPU processes, gloo), and a SIGTERM followed by --resume auto.

Both run the command in subprocesses: torchrun starts its own processes, and outside pytest's
jaxtyping hook a demo step takes a fraction of a second.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from aware3d.training import run_checkpoints as checkpoints

pytestmark = pytest.mark.slow

TINY = ("synthetic_images=64", "metric_images=16", "log_every=1")

#: Trains the demo recipe through `train()` and, after every step, all-gathers each process's
#: parameters and records whether they are identical on every rank.
LAUNCHER = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path

    import torch
    import torch.distributed as dist

    from aware3d.recipes import RECIPES, DemoRecipe, apply_overrides, train

    out = Path(sys.argv[1])
    config = apply_overrides(DemoRecipe(), sys.argv[2:])
    identical = []

    def check(info):
        nets = info.networks
        params = [*nets.generator.parameters(), *nets.discriminator.parameters(),
                  *nets.generator_ema.parameters()]
        flat = torch.cat([p.detach().reshape(-1) for p in params])
        gathered = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, flat)
        identical.append(all(torch.equal(gathered[0], g) for g in gathered))

    result = train(RECIPES["demo"], config, out=out, progress=False, callbacks=[check])
    rank = os.environ["RANK"]
    (out / f"sync-rank{rank}.json").write_text(json.dumps({"identical": identical,
                                                           "step": result.step}))
    """
)


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _train_command(*args: str) -> list[str]:
    sets = [part for item in TINY for part in ("--set", item)]
    return [sys.executable, "-m", "aware3d", "train", "--recipe", "demo", "--no-progress",
            *sets, *args]  # fmt: skip


def _generator(folder: Path, name: str = "generator") -> dict[str, torch.Tensor]:
    return load_file(folder / f"{name}.safetensors")


def test_two_processes_stay_in_sync_and_match_one_process_of_the_same_global_batch(tmp_path):
    launcher = tmp_path / "launch.py"
    launcher.write_text(LAUNCHER)
    # With Adam's default eps (1e-8) a gradient that is zero up to rounding becomes a step of
    # +-lr, so runs that differ only in summation order part by lr; eps = 1e-3 makes the update
    # Lipschitz in the gradient (|d step| <= lr / eps |d grad|) and the comparison meaningful.
    overrides = [*TINY, "steps=3", "batch=8", "checkpoint_kimg=0.008", "adam_eps=1e-3"]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
               "2", str(launcher), str(tmp_path / "ddp"), *overrides]  # fmt: skip
    ddp = subprocess.run(command, capture_output=True, text=True, timeout=600, env=_env())
    assert ddp.returncode == 0, ddp.stdout + ddp.stderr
    for rank in (0, 1):
        record = json.loads((tmp_path / "ddp" / f"sync-rank{rank}.json").read_text())
        assert record == {"identical": [True, True, True], "step": 3}
    # only rank 0 writes: one log, one checkpoint folder, world size 2 recorded
    state = json.loads(
        (tmp_path / "ddp" / "checkpoints" / "step-00000003" / "state.json").read_text()
    )
    assert state["world_size"] == 2 and len(state["rng"]) == 2 and state["images_seen"] == 24
    assert ddp.stdout.count("fit: 2 process(es)") == 1

    single = subprocess.run(
        _train_command("--out", str(tmp_path / "one"), "--steps", "3", "--batch", "8",
                       "--set", "adam_eps=1e-3", "--set", "checkpoint_kimg=0.008"),
        capture_output=True, text=True, timeout=600, env=_env(),
    )  # fmt: skip
    assert single.returncode == 0, single.stdout + single.stderr
    # Same draws, same mean over the global batch: only float32 summation order differs. After
    # one step the networks agree to rounding; later the rasterizer's depth sort and tile lists
    # (discontinuous in the parameters) let rounding grow, so later steps compare the losses.
    for name in ("generator", "discriminator", "generator_ema"):
        a = _generator(tmp_path / "ddp" / "checkpoints" / "step-00000001", name)
        b = _generator(tmp_path / "one" / "checkpoints" / "step-00000001", name)
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=f"{name}.{key}")
    losses = {}
    for run in ("ddp", "one"):
        lines = (tmp_path / run / "log.jsonl").read_text().splitlines()
        records = [json.loads(line) for line in lines
                   if '"loss/d_loss"' in line]  # fmt: skip
        losses[run] = torch.tensor([[r["loss/d_loss"], r["loss/g_loss"]] for r in records])
    assert losses["ddp"].shape == (3, 2)
    torch.testing.assert_close(losses["ddp"], losses["one"], rtol=1e-4, atol=1e-6)


def test_sigterm_stops_with_a_checkpoint_and_resume_auto_finishes(tmp_path):
    out = tmp_path / "run"
    args = ("--out", str(out), "--steps", "120", "--batch", "4", "--set", "checkpoint_kimg=0.08")
    process = subprocess.Popen(_train_command(*args), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=_env())  # fmt: skip
    deadline = time.monotonic() + 300
    log = out / "log.jsonl"
    while time.monotonic() < deadline and process.poll() is None:
        if log.is_file() and '"loss/d_loss"' in log.read_text():  # training has started
            break
        time.sleep(0.2)
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 143, stdout + stderr
    assert "stopping after this step" in stderr
    stopped_at = checkpoints.find_latest_checkpoint(out)
    assert stopped_at is not None
    step = int(stopped_at.name[5:])
    assert 0 < step < 120
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(r.get("message") == "stopped by a signal" for r in records)

    resumed = subprocess.run(_train_command(*args, "--resume", "auto"),
                             capture_output=True, text=True, timeout=600, env=_env())  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resumed from {stopped_at} at step {step}" in resumed.stdout
    final = checkpoints.find_latest_checkpoint(out)
    assert final is not None and final.name == "step-00000120"
    state = json.loads((final / "state.json").read_text())
    assert state["step"] == 120 and state["images_seen"] == 480
    assert json.loads((out / "metrics.json").read_text())["step"] == 120
