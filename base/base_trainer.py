"""The training loop, once: epochs, validation period, monitor, early stop and checkpoints.

Subclasses fill `_train_epoch` (and `_valid_epoch`) and declare the names of what they log in
`metric_names`, so that a monitor naming a metric that is never logged fails before training.
"""
import logging
import math
import random
import signal
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from utils.checkpoint import load_checkpoint, load_model_state, save_checkpoint
from utils.config import ConfigParser
from utils.distributed import DistributedContext, all_reduce_sum
from utils.errors import ConfigError, UserError
from utils.settings import check

logger = logging.getLogger("trainer")


class TrainingInterrupted(Exception):
    """Raised inside the loop when SIGINT or SIGTERM arrives, so a checkpoint can be written."""


@dataclass(frozen=True)
class TrainerSettings:
    """The `trainer` section of the config: the loop, checkpoints, logging and the joint trainer's
    options (mixed precision, memory format, compilation, gradient clipping). `epochs` and `type`
    have no default: a config states the length of its run (and the schedule's `T_max` with it)
    and, as for every section that builds a class, the trainer class (`trainer/`)."""

    epochs: int
    type: str
    seed: int = 0
    deterministic: bool = False
    save_dir: str = "saved"
    save_period: int = 4
    valid_split: str | None = "val"
    val_period: int = 1
    val_graphs: bool = False
    monitor: str = "max val/road_iou"
    early_stop: int | None = 10
    tensorboard: bool = True
    log_step: int = 10
    image_period: int = 2
    amp: bool = True
    channels_last: bool = True
    compile: bool = False
    sync_bn: bool = False
    clip_grad_norm: float | None = None
    skip_nonfinite_loss: bool = False

    def __post_init__(self) -> None:
        for name in ("epochs", "save_period", "val_period", "log_step", "image_period"):
            check(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")
        if self.early_stop is not None:
            check(self.early_stop >= 0, "early_stop", f"must be >= 0, got {self.early_stop}")
        parse_monitor(self.monitor)


class BaseTrainer(ABC):
    """Epoch loop with monitoring, early stopping, TensorBoard and atomic, resumable checkpoints.

    `model` is the network whose weights are saved; a subclass may run it through wrappers (DDP,
    `torch.compile`) of its own. Subclasses call `super().__init__()` first, then set themselves
    up; the base calls their hooks only from `train()`.
    """

    def __init__(self, model: nn.Module, criterion: Any, optimizer: torch.optim.Optimizer,
                 config: ConfigParser, context: DistributedContext,
                 lr_scheduler: Any = None) -> None:
        self.config = config
        self.context = context
        self.device = context.device
        self.model = model
        self.criterion = criterion
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        self.settings = config.settings(TrainerSettings, "trainer")
        config.place_run(self.settings.save_dir)
        self.epochs = self.settings.epochs
        self.early_stop = math.inf if self.settings.early_stop is None else self.settings.early_stop
        self.monitor_mode, self.monitor_key = parse_monitor(self.settings.monitor)
        self.monitor_best = {"min": math.inf, "max": -math.inf, "off": 0.0}[self.monitor_mode]
        self.not_improved = 0  # validations since monitor_best last improved
        self.start_epoch = 1
        self.writer = None
        self._interrupted_by: int | None = None
        self.last_checkpoint: Path | None = None
        # Where an interrupted epoch stopped (saved with checkpoint-interrupted.pth, restored on
        # resume, then consumed by the subclass's first epoch): see `_progress_state`.
        self.interrupted_progress: dict[str, Any] | None = None

    @abstractmethod
    def metric_names(self) -> set[str]:
        """Every key that `_train_epoch` and `_valid_epoch` may return."""

    @abstractmethod
    def _train_epoch(self, epoch: int) -> dict[str, float]:
        """Train one epoch; return the logged values (e.g. `train/loss`)."""

    @abstractmethod
    def _valid_epoch(self, epoch: int) -> dict[str, float]:
        """Validate; return the logged values (e.g. `val/road_iou`)."""

    def train(self) -> None:
        """Run epochs `start_epoch..epochs`.

        Ctrl-C or SIGTERM stops at the next training batch and saves a checkpoint of everything
        reached so far, the position in the epoch included (`_progress_state`): resuming from it
        goes on from that batch and ends with the weights an uninterrupted run would have.
        """
        self._prepare()
        if self.context.is_main and self.settings.tensorboard:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(log_dir=str(self.config.log_dir))
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        epoch = self.start_epoch - 1
        try:
            for epoch in range(self.start_epoch, self.epochs + 1):
                log = {"epoch": epoch, **self._train_epoch(epoch)}
                if epoch % self.settings.val_period == 0 or epoch == self.epochs:
                    log.update(self._valid_epoch(epoch))
                if self.context.is_main:
                    logger.info("epoch %d  %s", epoch, "  ".join(
                        f"{k} {v:.4f}" for k, v in log.items() if k != "epoch"))
                best = self._update_monitor(log)
                if self.monitor_key in log:
                    self.not_improved = 0 if best else self.not_improved + 1
                if epoch % self.settings.save_period == 0 or epoch == self.epochs:
                    self._save_checkpoint(epoch, log)
                if best:
                    self._save_checkpoint(epoch, log, name="model_best.pth")
                if self.not_improved > self.early_stop:
                    logger.info("%s did not improve for %d validations: early stop",
                                self.monitor_key, self.early_stop)
                    break
        except TrainingInterrupted:
            self.interrupted_progress = self._progress_state()  # every process: it may reduce
            path = self._save_checkpoint(epoch - 1, name="checkpoint-interrupted.pth")
            raise UserError(f"training stopped by signal {self._interrupted_by}; resumable checkpoint "
                            f"saved as {path}; resume with: python train.py -r {path}") from None
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self.writer is not None:
                self.writer.close()

    def _prepare(self) -> None:
        """Before the first epoch: check the monitor, resume, create the run folders."""
        if self.monitor_mode != "off" and self.monitor_key not in self.metric_names():
            raise ConfigError(f"trainer.monitor names '{self.monitor_key}', which is never logged; "
                              f"choose one of {', '.join(sorted(self.metric_names()))}")
        if self.config.resume is not None:
            self._resume_checkpoint(self.config.resume)
        if self.context.is_main:
            self.config.prepare_run_dirs()
            logger.info("run folder %s", self.config.save_dir)
            if self.config.resume is not None:
                logger.info("resumed from %s at epoch %d", self.config.resume, self.start_epoch)

    @property
    def checkpoint_dir(self) -> Path:
        return self.config.save_dir

    def _on_signal(self, signum: int, frame: Any) -> None:
        """First signal: finish the current batch, then save and stop. A second one: stop now."""
        if self._interrupted_by is not None:
            raise KeyboardInterrupt
        self._interrupted_by = signum
        logger.warning("signal %d received: stopping after this batch (again to stop at once)", signum)

    def _stop_if_interrupted(self) -> None:
        """Called by subclasses between training batches: leave the loop if a stop was requested.

        Under DDP the processes agree first, so that all of them stop at the same batch.
        """
        stop = self._interrupted_by is not None
        if self.context.enabled:
            stop = all_reduce_sum(torch.tensor(float(stop), device=self.device)).item() > 0
        if stop:
            raise TrainingInterrupted()

    def _update_monitor(self, log: dict[str, float]) -> bool:
        if self.monitor_mode == "off" or self.monitor_key not in log:
            return False
        value = log[self.monitor_key]
        improved = value < self.monitor_best if self.monitor_mode == "min" else value > self.monitor_best
        if improved:
            self.monitor_best = value
        return improved

    def _checkpoint_state(self, epoch: int, log: dict[str, float] | None) -> dict[str, Any]:
        return {
            "arch": type(self.model).__name__,
            "epoch": epoch,
            "log": {key: value for key, value in (log or {}).items() if key != "epoch"},
            "state_dict": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.lr_scheduler.state_dict() if self.lr_scheduler else None,
            "monitor_best": self.monitor_best,
            "not_improved": self.not_improved,
            "config": self.config.config,
            "progress": self.interrupted_progress,
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
                "numpy_position": np.random.get_state()[2],
                "python": list(random.getstate()[1]),
            },
            **self._extra_state(),
        }

    def _progress_state(self) -> dict[str, Any] | None:
        """Where the epoch in progress stopped, for an interrupted checkpoint (None: at an epoch
        boundary). Called on every process, after they agreed to stop."""
        return None

    def _extra_state(self) -> dict[str, Any]:
        """More state for the checkpoint (e.g. a gradient scaler); restored by `_load_extra_state`."""
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:  # noqa: B027 (optional hook)
        """Restore what `_extra_state` saved."""

    def _save_checkpoint(self, epoch: int, log: dict[str, float] | None = None,
                         name: str | None = None) -> Path:
        """Save the state after `epoch`; `log` (what the epoch logged, e.g. its validation
        metrics) travels with it, so a checkpoint says how good it is."""
        path = self.checkpoint_dir / (name or f"checkpoint-epoch{epoch}.pth")
        if not self.context.is_main:
            return path
        save_checkpoint(self._checkpoint_state(epoch, log), path)
        self.last_checkpoint = path
        if name == "model_best.pth":
            logger.info("saved %s (%s %.4f)", path, self.monitor_key, self.monitor_best)
        else:
            logger.info("saved %s (epoch %d)", path, epoch)
        return path

    def _resume_checkpoint(self, path: Path) -> None:
        state = load_checkpoint(path)
        load_model_state(self.model, state, path)
        self.optimizer.load_state_dict(state["optimizer"])
        if self.lr_scheduler is not None and state.get("lr_scheduler") is not None:
            self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        self.start_epoch = state["epoch"] + 1
        self.interrupted_progress = state.get("progress")
        self.monitor_best = state.get("monitor_best", self.monitor_best)
        self.not_improved = state.get("not_improved", 0)
        rng = state.get("rng")
        if rng:
            torch.set_rng_state(rng["torch"])
            if torch.cuda.is_available() and len(rng["cuda"]) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(rng["cuda"])
            np.random.set_state(("MT19937", rng["numpy"].numpy().astype(np.uint32),
                                 rng.get("numpy_position", 624), 0, 0.0))
            random.setstate((3, tuple(rng["python"]), None))
        self._load_extra_state(state)
        self.last_checkpoint = Path(path)


def parse_monitor(text: str) -> tuple[str, str]:
    """`"max val/road_iou"` -> ("max", "val/road_iou"); `"off"` -> ("off", "")."""
    if text == "off":
        return "off", ""
    mode, _, key = text.partition(" ")
    check(mode in ("min", "max") and bool(key), "monitor",
          f"must be 'off' or 'min|max <metric>', got {text!r}")
    return mode, key
