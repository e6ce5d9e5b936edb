"""What a run reports: scalars and image grids to TensorBoard and to ``DIR/log.jsonl``.

Only rank 0 logs; every other process gets a logger that does nothing. Each JSONL line is one
record, ``{"step", "kimg", "time", "kind": "scalars" | "images" | "event", ...}``, flushed as it
is written so a crash loses nothing already logged. Image grids are also written as PNG files
under ``DIR/images/`` (the JSONL record names the file).
"""

import json
import math
import time
from pathlib import Path
from typing import Any

from PIL import Image
from torch import Tensor

from aware3d.viz import figures

__all__ = ["RunLogger"]


class RunLogger:
    """Scalars and image grids of a run, to TensorBoard and a JSONL file (rank 0 only).

    Args:
        out_dir: the run's folder (``log.jsonl``, ``tensorboard/`` and ``images/`` go there).
        enabled: ``False`` on every rank but 0.
        tensorboard: also write TensorBoard event files (needs the ``tensorboard`` package).
        purge_step: on a resumed run, TensorBoard drops the events from this global step (images
            seen) on, which an earlier attempt logged past the restart point.
    """

    def __init__(
        self,
        out_dir: Path,
        *,
        enabled: bool,
        tensorboard: bool = True,
        purge_step: int | None = None,
    ) -> None:
        self.enabled = enabled
        self.out_dir = out_dir
        self._start = time.time()
        self._jsonl = None
        self._writer = None
        if not enabled:
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        self._jsonl = open(out_dir / "log.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(out_dir / "tensorboard"), purge_step=purge_step)

    def _record(self, record: dict[str, Any]) -> None:
        assert self._jsonl is not None
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()

    def scalars(self, step: int, images_seen: int, values: dict[str, float]) -> None:
        """Logs named numbers at ``step``."""
        if not self.enabled:
            return
        self._record({"kind": "scalars", "step": step, "kimg": images_seen / 1000,
                      "time": time.time() - self._start, **values})  # fmt: skip
        if self._writer is not None:
            for name, value in values.items():
                self._writer.add_scalar(name, value, global_step=images_seen)

    def images(self, step: int, images_seen: int, tag: str, images: Tensor) -> Path | None:
        """Logs a grid of images ``[N, H, W, 3]`` in [-1, 1]; returns the PNG written."""
        if not self.enabled:
            return None
        grid = figures.grid(figures.to_uint8(images), math.isqrt(images.shape[0] - 1) + 1)
        folder = self.out_dir / "images"
        folder.mkdir(exist_ok=True)
        path = folder / f"{tag}-{step:08d}.png"
        Image.fromarray(grid).save(path)
        self._record({"kind": "images", "step": step, "kimg": images_seen / 1000,
                      "time": time.time() - self._start, "tag": tag,
                      "file": str(path.relative_to(self.out_dir))})  # fmt: skip
        if self._writer is not None:
            self._writer.add_image(tag, grid, global_step=images_seen, dataformats="HWC")
        return path

    def event(self, step: int, images_seen: int, message: str, **extra: Any) -> None:
        """Logs a line of text (start, resume, checkpoint, stop)."""
        if not self.enabled:
            return
        self._record({"kind": "event", "step": step, "kimg": images_seen / 1000,
                      "time": time.time() - self._start, "message": message, **extra})  # fmt: skip
        if self._writer is not None:
            self._writer.add_text("events", message, global_step=images_seen)

    def close(self) -> None:
        """Flushes and closes the files."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None
