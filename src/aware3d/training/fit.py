"""The training loop :func:`fit`: any generator, one process or torchrun's, resumable bit for bit.

Any :class:`~aware3d.models.GeneratorProtocol` module trains here.

Each process builds the same networks (the caller seeds them), :func:`fit` wraps them in
``DistributedDataParallel`` when there are several processes, and each takes its share of every
step's global batch: real images through a ``DistributedSampler``, latents and fake cameras drawn
for the whole global batch from a stream every process shares (each process keeps every
``W``-th, as the sampler does with the real images), so the draws do not depend on the number of
processes. Each process also has its own stream (augmentation, pose swaps) and its own torch seed
(noise inside the networks). Rank 0 alone logs, evaluates and writes checkpoints.

A checkpoint holds everything the loop's future depends on (networks, EMA, optimizers, every
process's RNG states, the data position, the step), so resuming continues the same run: 2 + 2
steps equal 4 bit for bit in one CPU process. ``SIGTERM`` or ``SIGINT`` stops the run after the
current step with a checkpoint (all processes agree on the step).

The run folder belongs to one run (:mod:`aware3d.training.run_folder`): rank 0 holds its lock for
the run's life, a new run refuses a folder that holds another (unless ``overwrite`` moves it
aside), leftovers of killed writers are cleaned, a resume records and checks what defines the run
(batch, seed, processes, the data's identity), checkpoints after the restart point are set aside
and ``log.jsonl`` / TensorBoard keep one record per step.
"""

import contextlib
import json
import math
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm import tqdm

from aware3d._io import atomic_write_text
from aware3d._validation import check_nonnegative_int, check_positive_int
from aware3d.cameras import Cameras
from aware3d.data.eg3d import EG3DItem
from aware3d.models.protocol import SupportsCameraCheck, check_generator
from aware3d.training import run_checkpoints as checkpoints
from aware3d.training.data import DataPosition, RealBatches, data_identity, dataset_labels
from aware3d.training.distributed import (
    DistributedContext,
    init_distributed,
    shutdown_distributed,
)
from aware3d.training.evaluate import Evaluator, sample_images
from aware3d.training.logs import RunLogger
from aware3d.training.run_folder import (
    RunFolderError,
    RunLock,
    claim_run_folder,
    clean_leftovers,
    set_aside_later_checkpoints,
    truncate_log,
)
from aware3d.training.step import GANLoss, Networks, StepBatch, gan_step, make_networks

__all__ = ["STOPPED_EXIT_CODE", "FitResult", "StepInfo", "fit", "resolve_resume"]

#: Exit status of a run stopped by SIGTERM/SIGINT after writing its checkpoint.
STOPPED_EXIT_CODE = 143
#: What the ``state.json`` of a checkpoint that :func:`fit` resumes from must hold.
FIT_STATE_KEYS = ("step", "images_seen", "rng", "data_position", "optimizers")
#: Hyper-parameters of an optimizer's param groups that the caller's settings keep on resume.
_OPTIMIZER_SETTINGS = ("lr", "betas", "eps", "weight_decay")


@dataclass
class StepInfo:
    """What a callback of :func:`fit` is given after every step.

    Attributes:
        step: steps completed.
        images_seen: images shown to the discriminator (global).
        networks: this process's networks and optimizers.
        is_main: whether this is rank 0 (the process that writes).
        out: the run's folder.
    """

    step: int
    images_seen: int
    networks: Networks
    is_main: bool
    out: Path


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        run_dir: the run's folder.
        step: steps completed.
        images_seen: images shown to the discriminator (global).
        checkpoint: the last checkpoint written.
        metrics: the last evaluation (empty when none ran).
        stopped: whether a signal stopped the run early.
        networks: the networks (of this process).
        history: every logged loss by name, one value per step of this run (rank 0; empty
            elsewhere).
    """

    run_dir: Path
    step: int
    images_seen: int
    checkpoint: Path | None
    metrics: dict[str, float]
    stopped: bool
    networks: Networks
    history: dict[str, list[float]] = field(default_factory=dict)


def resolve_resume(
    resume: str | Path | None, out: Path, *, argument: str = "resume"
) -> Path | None:
    """The checkpoint folder ``resume`` names.

    ``"auto"`` is the newest complete checkpoint in ``out`` (``None`` when there is none), a run
    folder its newest complete one, and a checkpoint folder itself. Incomplete or damaged newer
    checkpoints are skipped with a message naming them.

    Args:
        resume: ``None``, ``"auto"``, a run folder or a checkpoint folder.
        out: the run's folder (for ``"auto"``).
        argument: the name of the option the user gave, for the error message.

    Raises:
        FileNotFoundError: for a folder that holds no checkpoint, naming ``argument``.
        ValueError: for a damaged checkpoint folder, or a run whose checkpoints are all damaged.
    """
    if resume is None:
        return None
    if str(resume) == "auto":
        return checkpoints.find_latest_checkpoint(out, required=FIT_STATE_KEYS)
    path = Path(resume)
    if (path / checkpoints.STATE_FILE).is_file() or checkpoints.STEP_PATTERN.match(path.name):
        problem = checkpoints.checkpoint_problem(path, required=FIT_STATE_KEYS)
        if problem is not None:
            raise ValueError(
                f"{argument} {resume}: the checkpoint is incomplete or damaged ({problem}); pass "
                f"an earlier one, or {argument} auto to take the newest complete one"
            )
        return path
    latest = checkpoints.find_latest_checkpoint(path, required=FIT_STATE_KEYS)
    if latest is None:
        raise FileNotFoundError(
            f"{argument} {resume}: no checkpoint there (a training checkpoint folder holds "
            f"{checkpoints.STATE_FILE}) nor in {Path(resume) / checkpoints.CHECKPOINT_FOLDER}"
        )
    return latest


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


def _rng_untouched(ctx: DistributedContext) -> contextlib.AbstractContextManager[None]:
    """Evaluation and grids leave torch's RNG states as they were (the run's future needs them)."""
    if ctx.device.type == "cuda":
        return torch.random.fork_rng(devices=[ctx.device], device_type="cuda")
    return torch.random.fork_rng(devices=[])


def _optimizer_settings(optimizer: torch.optim.Optimizer) -> list[dict[str, Any]]:
    return [{key: group[key] for key in _OPTIMIZER_SETTINGS if key in group}
            for group in optimizer.param_groups]  # fmt: skip


def _restore_settings(optimizer: torch.optim.Optimizer, settings: list[dict[str, Any]]) -> None:
    for group, values in zip(optimizer.param_groups, settings, strict=True):
        group.update(values)


def fit(
    generator: nn.Module,
    discriminator: nn.Module,
    data: Dataset[EG3DItem],
    loss: GANLoss,
    *,
    out: str | Path,
    steps: int,
    batch: int,
    optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer] | None = None,
    seed: int = 0,
    resolution: int | None = None,
    fake_labels: torch.Tensor | None = None,
    device: str = "cpu",
    resume: str | Path | None = None,
    overwrite: bool = False,
    on_resume: Callable[[dict[str, Any]], Sequence[str] | None] | None = None,
    config: Mapping[str, Any] | None = None,
    checkpoint_every: int = 1000,
    keep_checkpoints: int = 3,
    log_every: int = 10,
    image_every: int = 1000,
    metric_every: int = 0,
    metric_images: int = 2000,
    inception_weights: str | Path | None = None,
    workers: int = 0,
    tensorboard: bool = True,
    progress: bool = True,
    callbacks: Sequence[Callable[[StepInfo], None]] = (),
) -> FitResult:
    """Trains ``generator`` against ``discriminator`` on ``data`` with :func:`gan_step`.

    Writes into ``out``: ``checkpoints/step-<8 digits>/`` (every ``checkpoint_every`` steps and
    at the end, the newest ``keep_checkpoints`` kept), ``log.jsonl`` and ``tensorboard/`` (losses
    every ``log_every`` steps, events), ``images/samples-<step>.png`` (the EMA generator's grid
    every ``image_every`` steps), and ``metrics.json`` (the sliced Wasserstein distance, and
    FID/KID with local Inception weights, of the EMA generator at the end and every
    ``metric_every`` steps).

    Call it the same way in every process under ``torchrun`` (each process builds the networks
    from the same seed before calling it). Optimizers default to Adam with StyleGAN2's settings
    (G lr 0.0025, D lr 0.002, betas (0, 0.99), eps 1e-8). On resume the optimizers' stored
    states are loaded and the hyper-parameters given now (lr, betas, eps, weight decay) kept, so a
    changed learning rate takes effect.

    Args:
        generator: a :class:`~aware3d.models.GeneratorProtocol` module (moved to the device).
        discriminator: ``(images [B, H, W, F], labels [B, 25]) -> logits [B]`` for
            ``F = generator.image_channels`` (with ``forward_contrastive`` when
            ``loss.contrastive_weight > 0``), e.g.
            :class:`~aware3d.training.CameraConditionedDiscriminator`.
        data: items with ``.image [H, W, 3]`` in [-1, 1] and ``.label [25]`` and a ``labels``
            tensor ``[N, 25]`` (:class:`~aware3d.data.EG3DDataset`,
            :class:`~aware3d.data.SyntheticScenes`).
        loss: the weights and schedules (:class:`~aware3d.training.GANLoss`).
        out: the run's folder.
        steps: the step to train up to (counted from the start of the run, also on resume).
        batch: the global batch (divided evenly among the processes).
        optimizers: ``(generator's, discriminator's)``; default: Adam as above.
        seed: seed of the data order, the latents, the fake cameras and each process's streams.
        resolution: image size (default: the data's first image's width).
        fake_labels: the camera labels ``[M, 25]`` fakes are rendered from (drawn uniformly);
            default: the data's labels.
        device: ``cpu``, ``cuda`` (each process its ``LOCAL_RANK``) or ``cuda:N``.
        resume: ``None``, ``"auto"`` (the newest complete checkpoint in ``out``, if any), or a
            run or checkpoint folder. Without it ``out`` must be empty or missing.
        overwrite: start a new run in a folder that holds another, after moving the old run to
            ``<out>.old-<time>`` (nothing is deleted).
        on_resume: called with the resumed checkpoint's ``config.json`` before anything is
            loaded (on every process); raise to refuse the resume, or return the allowed
            changes (``"field: old -> new"``), which are printed and logged with the
            ``resumed from`` event (recipes compare their configuration here).
        config: JSON-ready data stored as ``config.json`` in every checkpoint (a recipe's).
        checkpoint_every: steps between checkpoints.
        keep_checkpoints: how many of the newest checkpoints to keep.
        log_every: steps between reading the losses back from the device (one synchronisation).
        image_every: steps between image grids.
        metric_every: steps between evaluations (0: only at the end).
        metric_images: images per set for the metrics.
        inception_weights: the FID Inception's weights; without them FID/KID are skipped and the
            sliced Wasserstein distance is kept.
        workers: data-loader worker processes per process.
        tensorboard: also write TensorBoard event files (needs the ``tensorboard`` package).
        progress: show tqdm's bar on rank 0.
        callbacks: called after every step, in order, with a :class:`StepInfo` (on every rank).

    Returns:
        :class:`FitResult`.

    Raises:
        TypeError: if ``generator`` does not implement the protocol.
        ValueError: for a batch the processes cannot share, a damaged checkpoint, or a
            checkpoint written with another batch, seed, number of processes or data.
        RunFolderError: for a folder another process is using, or one holding another run
            (without ``resume`` or ``overwrite``).
        RuntimeError: if a loss becomes NaN or infinite.
    """
    check_generator(generator)
    check_positive_int("steps", steps)
    check_positive_int("batch", batch)
    check_nonnegative_int("seed", seed)
    for name, value in (("checkpoint_every", checkpoint_every), ("log_every", log_every),
                        ("image_every", image_every), ("keep_checkpoints", keep_checkpoints),
                        ("metric_images", metric_images)):  # fmt: skip
        check_positive_int(name, value)
    check_nonnegative_int("metric_every", metric_every)
    ctx = init_distributed(device)
    try:
        with contextlib.ExitStack() as stack:
            checkpoint = _open_run_folder(Path(out), ctx, stack, resume=resume,
                                          overwrite=overwrite)  # fmt: skip
            return _fit(generator, discriminator, data, loss, ctx, Path(out), steps=steps,
                    batch=batch, optimizers=optimizers, seed=seed, resolution=resolution,
                    fake_labels=fake_labels, checkpoint=checkpoint, resuming=resume is not None,
                    on_resume=on_resume, config=dict(config or {}),
                    checkpoint_every=checkpoint_every, keep=keep_checkpoints, log_every=log_every,
                    image_every=image_every, metric_every=metric_every,
                    metric_images=metric_images, inception_weights=inception_weights,
                    workers=workers, tensorboard=tensorboard, progress=progress,
                    callbacks=callbacks)  # fmt: skip
    finally:
        shutdown_distributed()


def _open_run_folder(
    out: Path,
    ctx: DistributedContext,
    stack: contextlib.ExitStack,
    *,
    resume: str | Path | None,
    overwrite: bool,
) -> Path | None:
    """Rank 0 locks, claims and cleans the folder and resolves ``resume``; all agree on it."""
    outcome: tuple[Path | None, Exception | None] = (None, None)
    if ctx.is_main:
        try:
            stack.enter_context(RunLock(out))
            claim_run_folder(out, resuming=resume is not None, overwrite=overwrite)
            clean_leftovers(out)
            outcome = (resolve_resume(resume, out), None)
        except (RunFolderError, FileNotFoundError, ValueError) as error:
            outcome = (None, error)
    checkpoint, error = ctx.broadcast_object(outcome)
    if error is not None:
        raise error
    return checkpoint


def _check_run(checkpoint: Path, stored: Mapping[str, Any], run: Mapping[str, Any]) -> list[str]:
    """Refuses a resume into another run (naming the field); returns the allowed changes."""
    changes = []
    for key, value in run.items():
        old = stored.get(key)
        if key == "data" and isinstance(old, dict):
            for field in ("kind", "items", "resolution", "fingerprint"):
                if old.get(field) != value[field]:
                    raise ValueError(
                        f"{checkpoint} was trained on other data: its {field} is "
                        f"{old.get(field)!r}, this run's data has {value[field]!r} (resume with "
                        f"the same data, or start a new run folder)"
                    )
            if old.get("path") != value["path"]:
                changes.append(f"data path: {old.get('path')} -> {value['path']} (same content)")
        elif old is not None and old != value:
            raise ValueError(
                f"{checkpoint} was written with {key} {old!r}; this run has {value!r} "
                f"(resume with the same {key}, or start a new run folder)"
            )
    return changes


def _fit(
    generator: nn.Module,
    discriminator: nn.Module,
    data: Dataset[EG3DItem],
    loss: GANLoss,
    ctx: DistributedContext,
    out: Path,
    *,
    steps: int,
    batch: int,
    optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer] | None,
    seed: int,
    resolution: int | None,
    fake_labels: torch.Tensor | None,
    checkpoint: Path | None,
    resuming: bool,
    on_resume: Callable[[dict[str, Any]], Sequence[str] | None] | None,
    config: dict[str, Any],
    checkpoint_every: int,
    keep: int,
    log_every: int,
    image_every: int,
    metric_every: int,
    metric_images: int,
    inception_weights: str | Path | None,
    workers: int,
    tensorboard: bool,
    progress: bool,
    callbacks: Sequence[Callable[[StepInfo], None]],
) -> FitResult:
    if batch % ctx.world_size:
        raise ValueError(
            f"`batch` {batch} must be divisible by the number of processes {ctx.world_size}"
        )
    local_batch = batch // ctx.world_size
    if resolution is None:
        resolution = int(data[0].image.shape[1])
    gen = check_generator(generator)
    labels_all = (dataset_labels(data) if fake_labels is None else fake_labels).to(ctx.device)
    cameras_all = Cameras.from_eg3d_labels(labels_all[:, None])  # validated once, here
    if isinstance(generator, SupportsCameraCheck):  # before any work, not at the first grid
        generator.check_cameras(cameras_all, "fake cameras")
        if fake_labels is not None:
            data_cameras = Cameras.from_eg3d_labels(dataset_labels(data)[:, None])
            generator.check_cameras(data_cameras, "data cameras")
    generator.to(ctx.device)
    discriminator.to(ctx.device)
    if optimizers is None:
        optimizers = (
            torch.optim.Adam(generator.parameters(), lr=0.0025, betas=(0.0, 0.99), eps=1e-8),
            torch.optim.Adam(discriminator.parameters(), lr=0.002, betas=(0.0, 0.99), eps=1e-8),
        )
    opt_g, opt_d = optimizers
    settings = [_optimizer_settings(opt_g), _optimizer_settings(opt_d)]
    nets = make_networks(generator, discriminator, opt_g, opt_d,
                         wrap=ctx.wrap if ctx.distributed else None)  # fmt: skip
    modules = {"generator": nets.generator, "generator_ema": nets.generator_ema,
               "discriminator": nets.discriminator}  # fmt: skip
    optimizer_map = {"optimizer_generator": opt_g, "optimizer_discriminator": opt_d}
    run_meta = {"batch": batch, "seed": seed, "world_size": ctx.world_size,
                "data": data_identity(data, resolution)}  # fmt: skip

    if ctx.is_main:
        print(f"fit: {ctx.world_size} process(es) on {ctx.device}", flush=True)
    shared = torch.Generator().manual_seed(seed)
    local = torch.Generator().manual_seed(seed * 1_000_003 + 7919 * (ctx.rank + 1))
    torch.manual_seed(seed + 104_729 * (ctx.rank + 1))
    step, images_seen, position = 0, 0, DataPosition(0, 0)
    metrics: dict[str, float] = {}
    changes: list[str] = []
    if checkpoint is not None:
        state = checkpoints.read_checkpoint_state(checkpoint)
        stored_run = {"world_size": len(state["rng"]), **state.get("run", {})}
        changes = _check_run(checkpoint, stored_run, run_meta)
        if on_resume is not None:
            changes += on_resume(checkpoints.read_checkpoint_config(checkpoint)) or []
        state = checkpoints.load_training_checkpoint(
            checkpoint, modules=modules, optimizers=optimizer_map
        )
        _restore_settings(opt_g, settings[0])
        _restore_settings(opt_d, settings[1])
        checkpoints.restore_rng(state["rng"][ctx.rank], {"shared": shared, "local": local})
        step, images_seen = int(state["step"]), int(state["images_seen"])
        position = DataPosition(*state["data_position"])
        metrics = dict(state.get("metrics", {}))
    if ctx.is_main and resuming:
        set_aside_later_checkpoints(out, step if checkpoint is not None else -1)
        truncate_log(out, step if checkpoint is not None else -1)
    ctx.barrier()
    logger = RunLogger(out, enabled=ctx.is_main, tensorboard=tensorboard,
                       purge_step=images_seen + 1 if resuming else None)  # fmt: skip
    if checkpoint is not None and ctx.is_main:
        print(f"resumed from {checkpoint} at step {step} ({images_seen / 1000:g} kimg)")
        for change in changes:
            print(f"changed on resume: {change}")
        logger.event(step, images_seen, f"resumed from {checkpoint}", changes=changes)
    start_step = step
    batches = RealBatches(
        data, batch=local_batch, resolution=resolution, rank=ctx.rank,
        world_size=ctx.world_size, seed=seed, workers=workers, position=position,
    )  # fmt: skip
    evaluator = (
        Evaluator(
            data,
            resolution=resolution,
            images=metric_images,
            device=ctx.device,
            inception_weights=inception_weights,
        )
        if ctx.is_main
        else None
    )
    grid_z = torch.randn(16, gen.latent_dim, generator=torch.Generator().manual_seed(7))
    grid_z = grid_z.to(ctx.device)
    grid_labels = labels_all[torch.arange(16, device=ctx.device) % labels_all.shape[0]]

    last_checkpoint = checkpoint
    pending: list[tuple[int, dict[str, torch.Tensor]]] = []
    history: dict[str, list[float]] = {}
    tail: dict[str, float] = {}

    def save(at_step: int) -> Path | None:
        rng_states = ctx.gather_objects(checkpoints.capture_rng({"shared": shared, "local": local}))
        if not ctx.is_main:
            ctx.barrier()
            return None
        folder = checkpoints.save_training_checkpoint(
            out, at_step, modules=modules, optimizers=optimizer_map, config=config,
            state={"step": at_step, "images_seen": images_seen, "world_size": ctx.world_size,
                   "run": run_meta, "data_position": list(batches.position), "rng": rng_states,
                   "metrics": metrics, "saved_at": time.time()},
            keep=keep,
        )  # fmt: skip
        logger.event(at_step, images_seen, "checkpoint", folder=str(folder))
        ctx.barrier()
        return folder

    def evaluate(at_step: int) -> None:
        nonlocal metrics
        if evaluator is not None:
            with _rng_untouched(ctx):
                metrics = evaluator(nets.generator_ema)
            logger.scalars(at_step, images_seen, {f"metrics/{k}": v for k, v in metrics.items()})
            summary = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
            tqdm.write(f"step {at_step} ({images_seen / 1000:g} kimg): {summary}")
        ctx.barrier()

    def flush_losses() -> None:
        if not pending:
            return
        names = list(pending[0][1])
        rows = torch.stack([torch.stack([terms[n] for n in names]) for _, terms in pending])
        for (at_step, _), row in zip(pending, ctx.mean(rows).tolist(), strict=True):
            if not all(math.isfinite(v) for v in row):
                bad = [n for n, v in zip(names, row, strict=True) if not math.isfinite(v)]
                raise RuntimeError(f"training diverged at step {at_step}: {bad} not finite")
            tail.update(zip(names, row, strict=True))
            if ctx.is_main:
                for name, value in zip(names, row, strict=True):
                    history.setdefault(name, []).append(value)
            logger.scalars(at_step, images_seen,
                           {f"loss/{n}": v for n, v in zip(names, row, strict=True)})  # fmt: skip
        pending.clear()

    if checkpoint is None:
        logger.event(step, images_seen, "start", config=config, world_size=ctx.world_size)
    stopped = False
    bar = tqdm(total=steps, initial=min(step, steps), disable=not (progress and ctx.is_main),
               unit="step", desc="training", dynamic_ncols=True)  # fmt: skip
    window_start, window_images = time.perf_counter(), 0
    with _StopRequest() as stop:
        while step < steps:
            real, real_labels = batches.next(ctx.device)
            index = torch.randint(labels_all.shape[0], (batch,), generator=shared)
            z = torch.randn(batch, gen.latent_dim, generator=shared)
            mine = slice(ctx.rank, None, ctx.world_size)
            index = index[mine].to(ctx.device)
            inputs = StepBatch(real, real_labels, labels_all[index], cameras_all[index],
                               z[mine].to(ctx.device))  # fmt: skip
            plan = loss.schedule(step, images_seen, batch)
            terms = gan_step(nets, inputs, loss, plan, local, ctx.average_buffers)
            step += 1
            pending.append((step, terms))  # logged at the count of steps done, as checkpoints
            images_seen += batch
            window_images += batch
            bar.update(1)
            if len(pending) >= log_every or step == steps:
                flush_losses()
                rate = window_images / max(time.perf_counter() - window_start, 1e-9)
                logger.scalars(step, images_seen, {"speed/images_per_second": rate})
                bar.set_postfix(d=f"{tail['d_loss']:.3f}", g=f"{tail['g_loss']:.3f}",
                                img_s=f"{rate:.1f}")  # fmt: skip
                window_start, window_images = time.perf_counter(), 0
            for callback in callbacks:
                callback(StepInfo(step, images_seen, nets, ctx.is_main, out))
            stop_now = ctx.any(stop.requested)
            if step % checkpoint_every == 0 or step == steps or stop_now:
                flush_losses()
                if step == steps:
                    evaluate(step)
                last_checkpoint = save(step) or last_checkpoint
            if ctx.is_main and (step % image_every == 0 or step == steps):
                with _rng_untouched(ctx):
                    images = sample_images(nets.generator_ema, grid_z, grid_labels, resolution)
                logger.images(step, images_seen, "samples", images)
            if metric_every and step % metric_every == 0 and step < steps:
                evaluate(step)
            if stop_now:
                stopped = step < steps
                logger.event(step, images_seen, "stopped by a signal")
                break
    bar.close()
    logger.close()
    if ctx.is_main and step == start_step:
        print(f"the run is already at step {step} (of {steps}): nothing to train", flush=True)
    if ctx.is_main and step > start_step:
        atomic_write_text(out / "metrics.json", json.dumps(
            {"step": step, "kimg": images_seen / 1000, "metrics": metrics,
             "checkpoint": str(last_checkpoint)}, indent=2))  # fmt: skip
    return FitResult(out, step, images_seen, last_checkpoint, metrics, stopped, nets, history)
