"""``aware3d train``: a recipe trained by one process or by ``torchrun``'s processes.

Each process builds the same networks from the recipe's seed, wraps them in
``DistributedDataParallel`` when there are several, and takes its share of every step's global
batch: real images through a ``DistributedSampler``, latents and fake cameras drawn for the whole
global batch from a stream every process shares (each process keeps every ``W``-th, as the
sampler does with the real images), so the draws do not depend on the number of processes.
Each process also has its own stream (augmentation, pose swaps) and its own torch seed (noise
inside the networks). Rank 0 alone logs, evaluates and writes checkpoints.

A checkpoint holds everything the loop's future depends on (networks, EMA, optimizers, every
process's RNG states, the data position, the step), so resuming continues the same run: 2 + 2
steps equal 4 bit for bit in one CPU process. ``SIGTERM`` or ``SIGINT`` stops the run after the
current step with a checkpoint (all processes agree on the step), and ``--resume auto`` continues.
"""

import contextlib
import dataclasses
import inspect
import json
import math
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from aware3d._io import atomic_write_text
from aware3d.cameras import Cameras
from aware3d.demo.models import latent_dim
from aware3d.trainer import checkpoints
from aware3d.trainer.data import DataPosition, RealBatches, dataset_labels, open_dataset
from aware3d.trainer.distributed import DistributedContext, init_distributed, shutdown_distributed
from aware3d.trainer.evaluate import Evaluator
from aware3d.trainer.logs import RunLogger
from aware3d.trainer.models import build_discriminator, build_generator, sample_images
from aware3d.trainer.recipes import TrainConfig, config_from_json, config_to_json, describe
from aware3d.trainer.step import (
    LOSS_NAMES,
    DiscriminatorPass,
    Networks,
    StepInputs,
    schedule,
    training_step,
)
from aware3d.training import make_ema

__all__ = ["TrainResult", "build_networks", "resolve_resume", "train"]

#: Exit status of a run stopped by SIGTERM/SIGINT after writing its checkpoint.
STOPPED_EXIT_CODE = 143
#: Fields a resumed run may not change: the networks' shapes, the data (and the meaning of the
#: stored data position, counted in batches) and the seeds of the streams.
_IMMUTABLE_ON_RESUME = ("model", "resolution", "batch", "seed", "synthetic_images")


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        run_dir: the run's folder.
        step: steps completed.
        images_seen: images shown to the discriminator (global).
        checkpoint: the last checkpoint written.
        metrics: the last evaluation (empty when none ran).
        stopped: whether a signal stopped the run early.
        networks: the networks (of this process).
    """

    run_dir: Path
    step: int
    images_seen: int
    checkpoint: Path | None
    metrics: dict[str, float]
    stopped: bool
    networks: Networks


def _wrap(
    module: torch.nn.Module, device_ids: list[int] | None, *, sync_buffers: bool
) -> DistributedDataParallel:
    """``module`` in DDP; ``sync_buffers=False`` leaves the buffers to the loop (averaged).

    ``find_unused_parameters`` is on: BallGAN's super-resolution noise strengths are unused
    (EG3D renders it without noise) and so is GSGAN's contrastive branch at weight 0.
    """
    options: dict[str, Any] = {"device_ids": device_ids, "find_unused_parameters": True}
    if not sync_buffers:  # newer torch renames the option (and still syncs at construction)
        accepted = inspect.signature(DistributedDataParallel.__init__).parameters
        name = "forward_sync_buffers" if "forward_sync_buffers" in accepted else "broadcast_buffers"
        options[name] = False
    return DistributedDataParallel(module, **options)


def build_networks(config: TrainConfig, ctx: DistributedContext) -> Networks:
    """The recipe's networks and optimizers on ``ctx.device`` (seeded by ``config.seed``)."""
    torch.manual_seed(config.seed)
    generator = build_generator(config).to(ctx.device)
    channels = int(getattr(generator, "image_channels"))  # noqa: B009
    discriminator = build_discriminator(config, channels).to(ctx.device)
    generator_ema = make_ema(generator)
    opt_g = torch.optim.Adam(generator.parameters())
    opt_d = torch.optim.Adam(discriminator.parameters())
    apply_optimizer_settings(config, opt_g, opt_d)
    generator_train: torch.nn.Module = generator
    discriminator_train: torch.nn.Module = DiscriminatorPass(discriminator)
    if ctx.distributed:
        device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        generator_train = _wrap(generator, device_ids, sync_buffers=False)
        discriminator_train = _wrap(discriminator_train, device_ids, sync_buffers=True)
    return Networks(generator, generator_ema, discriminator, generator_train,
                    discriminator_train, opt_g, opt_d)  # fmt: skip


def apply_optimizer_settings(
    config: TrainConfig, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer
) -> None:
    """Sets the recipe's learning rates, betas and eps on both optimizers.

    The discriminator's lr and betas get StyleGAN2's lazy-regularisation compensation
    ``c = interval / (interval + 1)`` (``lr * c``, ``beta ** c``) when ``lazy_adjust`` is set.
    Called after a resume too, so a changed ``--set lr_generator=...`` takes effect (the
    optimizers' stored state would otherwise bring the old values back).
    """
    ratio = config.r1_interval / (config.r1_interval + 1) if config.lazy_adjust else 1.0
    settings = (
        (opt_g, config.lr_generator, config.betas),
        (opt_d, config.lr_discriminator * ratio, (config.betas[0] ** ratio,
                                                   config.betas[1] ** ratio)),
    )  # fmt: skip
    for optimizer, lr, betas in settings:
        for group in optimizer.param_groups:
            group.update(lr=lr, betas=betas, eps=config.adam_eps)


def _checkpoint_modules(nets: Networks) -> dict[str, torch.nn.Module]:
    """The networks as a checkpoint stores them (one safetensors file each)."""
    return {"generator": nets.generator, "generator_ema": nets.generator_ema,
            "discriminator": nets.discriminator}  # fmt: skip


def _checkpoint_optimizers(nets: Networks) -> dict[str, torch.optim.Optimizer]:
    return {"optimizer_generator": nets.opt_g, "optimizer_discriminator": nets.opt_d}


def resolve_resume(resume: str | None, out: Path) -> Path | None:
    """The checkpoint ``--resume`` names.

    ``auto`` is the newest in ``out`` (``None`` when there is none), a run folder its newest, and
    a checkpoint folder itself.

    Raises:
        FileNotFoundError: for a folder that holds no checkpoint.
    """
    if resume is None:
        return None
    if resume == "auto":
        return checkpoints.find_latest_checkpoint(out)
    path = Path(resume)
    if (path / checkpoints.STATE_FILE).is_file():
        return path
    latest = checkpoints.find_latest_checkpoint(path)
    if latest is None:
        raise FileNotFoundError(f"--resume {resume}: no checkpoint there (nor in checkpoints/)")
    return latest


def _check_resume_config(config: TrainConfig, stored: TrainConfig) -> list[str]:
    """Fields that differ between the command and the checkpoint; refuses the structural ones."""
    if type(config) is not type(stored):
        raise ValueError(
            f"the checkpoint was written by the {type(stored).recipe!r} recipe, not "
            f"{type(config).recipe!r}"
        )
    changed = []
    for field in dataclasses.fields(config):
        new, old = getattr(config, field.name), getattr(stored, field.name)
        if new != old:
            if field.name in _IMMUTABLE_ON_RESUME or field.name.startswith(("d_", "z_", "w_")):
                raise ValueError(
                    f"`{field.name}` is {old!r} in the checkpoint and {new!r} now: it fixes the "
                    "networks' shapes and cannot change on resume"
                )
            changed.append(f"{field.name}: {old!r} -> {new!r}")
    return changed


class _StopRequest:
    """Remembers a SIGTERM/SIGINT so the loop can stop after the current step."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: object) -> None:
        del frame
        self.requested = True
        print(f"\nreceived signal {signum}: stopping after this step", file=sys.stderr, flush=True)

    def __enter__(self) -> "_StopRequest":
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError):  # not the main thread: signals stay as they are
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def train(
    config: TrainConfig,
    *,
    out: Path,
    data: Path | None = None,
    device: str = "cpu",
    resume: str | None = None,
    inception_weights: Path | None = None,
    progress: bool = True,
    on_step: Callable[[int, Networks], None] | None = None,
) -> TrainResult:
    """Trains ``config`` into ``out`` (single process, or one of torchrun's processes).

    Args:
        config: the resolved recipe.
        out: the run's folder (``checkpoints/``, ``log.jsonl``, ``tensorboard/``, ``images/``).
        data: an EG3D data set (folder or zip); ``None`` for the demo's synthetic scenes.
        device: ``cpu``, ``cuda`` (each process its ``LOCAL_RANK``) or ``cuda:N``.
        resume: ``None``, ``"auto"`` or a run / checkpoint folder.
        inception_weights: the FID Inception's weights (see
            :func:`~aware3d.trainer.inception.find_inception_weights`); without them FID/KID are
            skipped and the sliced Wasserstein distance is kept.
        progress: show tqdm's bar on rank 0.
        on_step: called after every step with the step count and the networks (tests).

    Returns:
        :class:`TrainResult`.

    Raises:
        ValueError: for a batch the processes cannot share, or a checkpoint of another recipe.
        RuntimeError: if a loss becomes NaN or infinite.
    """
    ctx = init_distributed(device)
    try:
        return _train(config, ctx, out, data, resume, inception_weights, progress, on_step)
    finally:
        shutdown_distributed()


def _train(
    config: TrainConfig,
    ctx: DistributedContext,
    out: Path,
    data: Path | None,
    resume: str | None,
    inception_weights: Path | None,
    progress: bool,
    on_step: Callable[[int, Networks], None] | None,
) -> TrainResult:
    if config.batch % ctx.world_size:
        raise ValueError(
            f"`batch` {config.batch} must be divisible by the number of processes {ctx.world_size}"
        )
    local_batch = config.batch // ctx.world_size
    checkpoint = resolve_resume(resume, out) if ctx.is_main else None
    checkpoint = ctx.broadcast_object(checkpoint)
    logger = RunLogger(out, enabled=ctx.is_main)
    if ctx.is_main:
        print(f"aware3d train: {ctx.world_size} process(es) on {ctx.device}; config:")
        print(describe(config), flush=True)

    dataset = open_dataset(data, config)
    labels_all = dataset_labels(dataset).to(ctx.device)
    cameras_all = Cameras.from_eg3d_labels(labels_all[:, None])
    nets = build_networks(config, ctx)
    latent = latent_dim(nets.generator)
    shared = torch.Generator().manual_seed(config.seed)
    local = torch.Generator().manual_seed(config.seed * 1_000_003 + 7919 * (ctx.rank + 1))
    torch.manual_seed(config.seed + 104_729 * (ctx.rank + 1))
    step, images_seen, position = 0, 0, DataPosition(0, 0)
    if checkpoint is not None:
        stored = config_from_json(checkpoints.read_checkpoint_config(checkpoint))
        changed = _check_resume_config(config, stored)
        state = checkpoints.load_training_checkpoint(
            checkpoint, modules=_checkpoint_modules(nets), optimizers=_checkpoint_optimizers(nets)
        )
        apply_optimizer_settings(config, nets.opt_g, nets.opt_d)
        if state["world_size"] != ctx.world_size:
            raise ValueError(
                f"{checkpoint} was written by {state['world_size']} process(es); resume it with "
                f"the same number (this run has {ctx.world_size})"
            )
        checkpoints.restore_rng(state["rng"][ctx.rank], {"shared": shared, "local": local})
        step, images_seen = int(state["step"]), int(state["images_seen"])
        position = DataPosition(*state["data_position"])
        if ctx.is_main:
            note = f"; changed: {', '.join(changed)}" if changed else ""
            print(f"resumed from {checkpoint} at step {step} ({images_seen / 1000:g} kimg){note}")
            logger.event(step, images_seen, f"resumed from {checkpoint}", changed=changed)
    batches = RealBatches(
        dataset, batch=local_batch, resolution=config.resolution, rank=ctx.rank,
        world_size=ctx.world_size, seed=config.seed, workers=config.workers, position=position,
    )  # fmt: skip
    evaluator = Evaluator(dataset, config, ctx, inception_weights) if ctx.is_main else None
    grid_z = torch.randn(16, latent, generator=torch.Generator().manual_seed(7)).to(ctx.device)
    grid_labels = labels_all[torch.arange(16) % labels_all.shape[0]]

    total = config.total_steps
    checkpoint_every, image_every = (
        config.every(config.checkpoint_kimg),
        config.every(config.image_kimg),
    )
    metric_every = config.every(config.metric_kimg) if config.metric_kimg > 0 else 0
    config_json = config_to_json(config)
    last_checkpoint = checkpoint
    metrics: dict[str, float] = {}
    pending: list[tuple[int, torch.Tensor]] = []
    history_tail: dict[str, float] = {}

    def save(at_step: int) -> Path | None:
        rng_states = ctx.gather_objects(checkpoints.capture_rng({"shared": shared, "local": local}))
        if not ctx.is_main:
            ctx.barrier()
            return None
        folder = checkpoints.save_training_checkpoint(
            out, at_step,
            modules=_checkpoint_modules(nets), optimizers=_checkpoint_optimizers(nets),
            config=config_json,
            state={"step": at_step, "images_seen": images_seen, "world_size": ctx.world_size,
                   "data_position": list(batches.position), "rng": rng_states,
                   "metrics": metrics, "saved_at": time.time()},
            keep=config.keep_checkpoints,
        )  # fmt: skip
        logger.event(at_step, images_seen, "checkpoint", folder=str(folder))
        ctx.barrier()
        return folder

    def evaluate(at_step: int) -> None:
        nonlocal metrics
        if evaluator is not None:
            metrics = evaluator(nets.generator_ema)
            logger.scalars(at_step, images_seen, {f"metrics/{k}": v for k, v in metrics.items()})
            summary = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
            tqdm.write(f"step {at_step} ({images_seen / 1000:g} kimg): {summary}")
        ctx.barrier()

    def flush_losses() -> None:
        if not pending:
            return
        values = ctx.mean(torch.stack([losses for _, losses in pending])).tolist()
        for (at_step, _), row in zip(pending, values, strict=True):
            if not all(math.isfinite(v) for v in row):
                raise RuntimeError(f"training diverged at step {at_step}: a loss is not finite")
            history_tail.update(zip(LOSS_NAMES, row, strict=True))
            named = {f"loss/{name}": v for name, v in zip(LOSS_NAMES, row, strict=True)}
            logger.scalars(at_step, images_seen, named)
        pending.clear()

    if checkpoint is None:
        logger.event(step, images_seen, "start", config=config_json, world_size=ctx.world_size)
    stopped = False
    bar = tqdm(total=total, initial=step, disable=not (progress and ctx.is_main), unit="step",
               desc="training", dynamic_ncols=True)  # fmt: skip
    window_start, window_images = time.perf_counter(), 0
    with _StopRequest() as stop:
        while step < total:
            real, real_labels = batches.next(ctx.device)
            index = torch.randint(labels_all.shape[0], (config.batch,), generator=shared)
            z = torch.randn(config.batch, latent, generator=shared)
            mine = slice(ctx.rank, None, ctx.world_size)
            index = index[mine].to(ctx.device)
            inputs = StepInputs(real, real_labels, labels_all[index], cameras_all[index],
                                z[mine].to(ctx.device))  # fmt: skip
            plan = schedule(config, step, images_seen)
            losses = training_step(nets, inputs, config, plan, local, ctx.average_buffers)
            pending.append((step, losses))
            step += 1
            images_seen += config.batch
            window_images += config.batch
            bar.update(1)
            if on_step is not None:
                on_step(step, nets)
            if len(pending) >= config.log_every or step == total:
                flush_losses()
                rate = window_images / max(time.perf_counter() - window_start, 1e-9)
                logger.scalars(step, images_seen, {"speed/images_per_second": rate})
                bar.set_postfix(d=f"{history_tail['d_loss']:.3f}",
                                g=f"{history_tail['g_loss']:.3f}", img_s=f"{rate:.1f}")  # fmt: skip
                window_start, window_images = time.perf_counter(), 0
            if ctx.is_main and (step % image_every == 0 or step == total):
                images = sample_images(nets.generator_ema, grid_z, grid_labels, config.resolution)
                logger.images(step, images_seen, "samples", images)
            if metric_every and step % metric_every == 0 and step < total:
                evaluate(step)
            stop_now = ctx.any(stop.requested)
            if step % checkpoint_every == 0 or step == total or stop_now:
                flush_losses()
                if step == total:
                    evaluate(step)
                last_checkpoint = save(step) or last_checkpoint
            if stop_now:
                stopped = step < total
                logger.event(step, images_seen, "stopped by a signal")
                break
    bar.close()
    logger.close()
    if ctx.is_main:
        atomic_write_text(out / "metrics.json", json.dumps(
            {"step": step, "kimg": images_seen / 1000, "metrics": metrics,
             "checkpoint": str(last_checkpoint)}, indent=2))  # fmt: skip
    return TrainResult(out, step, images_seen, last_checkpoint, metrics, stopped, nets)
