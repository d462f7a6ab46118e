"""The joint trainer: both tasks, every stack, mixed precision, DDP, whole-tile validation."""
import logging
import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torchvision.utils import make_grid
from tqdm import tqdm

from base.base_trainer import BaseTrainer
from evaluation.pipeline import Evaluator, TileResult, evaluation_settings
from evaluation.predictor import PredictorSettings, SlidingWindowPredictor, fast_dtype_for
from roads.classes import colorize
from utils.config import ConfigParser
from utils.distributed import DistributedContext, all_reduce_sum
from utils.errors import UserError

logger = logging.getLogger("trainer")


def autocast_dtype_for(device: torch.device, enabled: bool) -> torch.dtype | None:
    """The training autocast dtype of `trainer.amp`: on CUDA bf16 where the GPU supports it, else
    fp16 (with a gradient scaler); on a CPU bf16 where its cores compute it natively (AVX-512
    BF16 or AMX: 1.5x faster training on this project's CPU), else none."""
    if not enabled:
        return None
    return fast_dtype_for(device)


def forward_loss(model: nn.Module, criterion: Any, batch: dict[str, Tensor],
                 autocast_dtype: torch.dtype | None, channels_last: bool) -> dict[str, Tensor]:
    """The loss terms of one batch: forward under autocast, loss in float32.

    batch: `image` (B, 3, h, w) and the targets the criterion reads, on the model's device.
    """
    image = batch["image"]
    if channels_last:
        image = image.contiguous(memory_format=torch.channels_last)
    with torch.autocast(image.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        outputs = model(image)
    return criterion(outputs, batch)


def optimize(loss: Tensor, model: nn.Module, optimizer: torch.optim.Optimizer,
             scaler: torch.amp.GradScaler, clip_grad_norm: float | None = None) -> None:
    """Backward and one optimizer step, through the gradient scaler (a no-op unless fp16)."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if clip_grad_norm:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
    scaler.step(optimizer)
    scaler.update()


class JointTrainer(BaseTrainer):
    """Trains segmentation and connectivity jointly on random crops; validates on whole tiles
    through the evaluation pipeline that `test.py` runs."""

    def __init__(self, model: nn.Module, criterion: Any, optimizer: torch.optim.Optimizer,
                 config: ConfigParser, context: DistributedContext, data_loader: Any,
                 valid_data_loader: Any = None, lr_scheduler: Any = None) -> None:
        super().__init__(model, criterion, optimizer, config, context, lr_scheduler)
        settings = self.settings
        self.data_loader = data_loader
        self.valid_data_loader = valid_data_loader
        self.channels_last = settings.channels_last and context.device.type == "cuda"
        self.autocast_dtype = autocast_dtype_for(context.device, settings.amp)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast_dtype == torch.float16)
        self.global_step = 0
        self._epoch_progress: tuple = (1, 0, {}, torch.zeros(()), 0)
        # The network as training runs it; self.model stays the plain module whose weights are
        # saved and which validation predicts with.
        self.train_model = model
        if context.enabled:
            self.train_model = DistributedDataParallel(
                model, device_ids=[context.device.index] if context.device.type == "cuda" else None)
        if settings.compile:
            self.train_model = torch.compile(self.train_model)
        self.evaluation = evaluation_settings(config, graphs=settings.val_graphs)
        self.predictor = SlidingWindowPredictor(
            model, config.settings(PredictorSettings, "predictor"), device=context.device)

    def metric_names(self) -> set[str]:
        train = {"train/loss", "train/lr"} | {
            f"train/{name}" for name in self.criterion.term_names(self.model.num_stacks)
            if name != "total"}
        if self.valid_data_loader is None:
            return train
        return train | {f"val/{name}" for name in Evaluator.metric_names(self.evaluation)}

    def _extra_state(self) -> dict[str, Any]:
        return {"scaler": self.scaler.state_dict(), "global_step": self.global_step}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.global_step = state.get("global_step", 0)

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        self.train_model.train()
        # An epoch interrupted at a batch goes on from there, with what it had summed so far.
        progress = self.interrupted_progress
        self.interrupted_progress = None
        if progress is None or progress["epoch"] != epoch:
            progress = {"epoch": epoch, "batch": 0, "batches": 0, "skipped": 0, "sums": {}}
        self.data_loader.set_epoch(epoch, skip_batches=progress["batch"])
        # A plain dict: a default factory closing over `self`, kept in `_epoch_progress`, would
        # make a reference cycle that keeps the loader's workers alive past the end of the run.
        restored = self.context.is_main  # the sums saved are over every process
        sums: dict[str, Tensor] = {name: value.to(self.device) if restored
                                   else torch.zeros((), device=self.device)
                                   for name, value in progress["sums"].items()}
        batches = torch.tensor(float(progress["batches"] if restored else 0), device=self.device)
        skipped = progress["skipped"]
        bar = tqdm(self.data_loader, desc=f"epoch {epoch}/{self.epochs}", leave=False,
                   disable=not self.context.is_main, dynamic_ncols=True)
        for batch_index, batch in enumerate(bar, start=progress["batch"]):
            self._epoch_progress = (epoch, batch_index, sums, batches, skipped)
            self._stop_if_interrupted()
            batch = self._to_device(batch)
            terms = self._step(batch, epoch, batch_index)
            if terms is None:
                skipped += 1
                logger.warning("non-finite loss at epoch %d, batch %d: batch skipped", epoch,
                               batch_index)
                continue
            for name, value in terms.items():
                sums[name] = sums.get(name, 0) + value.detach()
            batches += 1
            self.global_step += 1
            if batch_index % self.settings.log_step == 0:
                loss = terms["total"].item()
                bar.set_postfix(loss=f"{loss:.4f}")
                if self.writer is not None:
                    self.writer.add_scalar("batch/train_loss", loss, self.global_step)
        self._epoch_progress = (epoch + 1, 0, {}, torch.zeros(()), 0)
        log = {"train/lr": self.optimizer.param_groups[0]["lr"]}
        if self.lr_scheduler is not None:
            self.lr_scheduler.step()
        names = sorted(sums)
        totals = all_reduce_sum(torch.stack([sums[n] for n in names] + [batches]).double())
        count = max(totals[-1].item(), 1.0)
        log.update({("train/loss" if n == "total" else f"train/{n}"): (t / count).item()
                    for n, t in zip(names, totals[:-1])})
        if skipped:
            log["train/skipped_batches"] = skipped
        self._write_scalars(log, epoch)
        return log

    def _progress_state(self) -> dict[str, Any] | None:
        """The interrupted epoch, its next batch and its sums over every process so far."""
        epoch, batch_index, sums, batches, skipped = self._epoch_progress
        names = sorted(sums)
        totals = all_reduce_sum(torch.stack([sums[n] for n in names] + [batches]).double())
        return {"epoch": epoch, "batch": batch_index, "batches": int(totals[-1].item()),
                "skipped": skipped,
                "sums": {name: total.float().cpu() for name, total in zip(names, totals[:-1])}}

    def _step(self, batch: dict[str, Tensor], epoch: int, batch_index: int) -> dict[str, Tensor] | None:
        terms = forward_loss(self.train_model, self.criterion, batch, self.autocast_dtype,
                             self.channels_last)
        loss = terms["total"]
        finite = torch.isfinite(loss).float()
        if self.context.enabled:
            finite = all_reduce_sum(finite) / self.context.world_size
        if finite.item() < 1:
            if self.settings.skip_nonfinite_loss:
                return None
            kept = (f"the last good checkpoint is {self.last_checkpoint}" if self.last_checkpoint
                    else "no checkpoint was saved before it")
            raise UserError(f"the loss is {loss.item()} (not finite) at epoch {epoch}, batch "
                            f"{batch_index}; training stopped, {kept}; set "
                            f"trainer.skip_nonfinite_loss to skip such batches instead")
        optimize(loss, self.train_model, self.optimizer, self.scaler, self.settings.clip_grad_norm)
        return terms

    def _valid_epoch(self, epoch: int) -> dict[str, float]:
        if self.valid_data_loader is None:
            return {}
        evaluator = Evaluator(self.predictor, self.evaluation)
        tiles = tqdm(self.valid_data_loader, desc="validation", leave=False,
                     disable=not self.context.is_main, dynamic_ncols=True)
        for index, tile in enumerate(evaluator.tiles(tiles)):
            if index == 0 and epoch % self.settings.image_period == 0:
                self._write_images(tile, epoch)
        log = {f"val/{name}": value for name, value in evaluator.result().items()
               if isinstance(value, float)}
        self._write_scalars(log, epoch)
        return log

    def _to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {key: value.to(self.device, non_blocking=True) if isinstance(value, Tensor) else value
                for key, value in batch.items()}

    def _write_scalars(self, log: dict[str, float], epoch: int) -> None:
        if self.writer is None:
            return
        for name, value in log.items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(name, value, epoch)

    def _write_images(self, tile: TileResult, epoch: int, size: int = 256) -> None:
        """One panel of a fixed central crop of the first validation tile: image, true mask, road
        probability, true and predicted connectivity, side by side."""
        if self.writer is None:
            return
        height, width = tile.prediction.mask.shape
        top, left = max((height - size) // 2, 0), max((width - size) // 2, 0)
        window = (slice(top, top + size), slice(left, left + size))
        item, prediction = tile.item, tile.prediction

        def picture(array: np.ndarray) -> Tensor:
            """(h, w) grey in [0, 1] or (h, w, 3) uint8 -> (3, h, w) float in [0, 1]."""
            tensor = torch.as_tensor(np.ascontiguousarray(array))
            if tensor.dim() == 2:
                return tensor.float().expand(3, *tensor.shape)
            return tensor.permute(2, 0, 1).float() / 255

        panels = [picture(item["raw_image"].numpy()[window]),
                  picture(item["mask"].numpy()[window] == 1),
                  picture(prediction.probability[window] / 255),
                  picture(colorize(item["conn"].numpy()[window].astype(np.uint8))),
                  picture(colorize(prediction.connectivity[window]))]
        self.writer.add_image("val/image_mask_probability_connectivity",
                              make_grid(panels, nrow=len(panels), padding=4, pad_value=0.5), epoch)
