"""The joint trainer: both tasks, every stack, mixed precision, DDP, whole-tile validation."""
import logging
import math
from collections import defaultdict
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from base.base_trainer import BaseTrainer
from roads.classes import colorize
from model.loss import balanced_cross_entropy, soft_iou_loss
from evaluation.metrics import RoadMetrics
from utils.config import ConfigParser
from utils.distributed import DistributedContext, all_reduce_sum
from utils.errors import UserError
from evaluation.predictor import SlidingWindowPredictor

logger = logging.getLogger("trainer")

VALIDATION_METRICS = ("road_iou", "precision", "recall", "f1", "relaxed_f1", "conn_miou")


def autocast_dtype_for(device: torch.device, enabled: bool) -> torch.dtype | None:
    """bf16 where the GPU supports it, else fp16 (with a gradient scaler); nothing on the CPU."""
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


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


def optimise(loss: Tensor, model: nn.Module, optimizer: torch.optim.Optimizer,
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
    """Trains segmentation and connectivity jointly on random crops; validates on whole tiles."""

    def __init__(self, model: nn.Module, criterion: Any, optimizer: torch.optim.Optimizer,
                 config: ConfigParser, context: DistributedContext, data_loader: Any,
                 valid_data_loader: Any = None, lr_scheduler: Any = None) -> None:
        settings = config["trainer"]
        self.data_loader = data_loader
        self.valid_data_loader = valid_data_loader
        self.log_step = settings.get("log_step", 10)
        self.image_period = settings.get("image_period", 5)
        self.clip_grad_norm = settings.get("clip_grad_norm")
        self.skip_nonfinite = settings.get("skip_nonfinite_loss", False)
        self.channels_last = settings.get("channels_last", False) and context.device.type == "cuda"
        self.autocast_dtype = autocast_dtype_for(context.device, settings.get("amp", True))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast_dtype == torch.float16)
        self.rho = config["metrics"]["rho"]
        self.global_step = 0
        super().__init__(model, criterion, optimizer, config, context, lr_scheduler)
        if context.enabled:
            self.model = DistributedDataParallel(
                model, device_ids=[context.device.index] if context.device.type == "cuda" else None)
        if settings.get("compile", False):
            self.model = torch.compile(self.model)
        self.predictor = SlidingWindowPredictor(
            self._unwrapped_model(), device=context.device, autocast_dtype=self.autocast_dtype,
            **config.checked_section("predictor", SlidingWindowPredictor))

    def metric_names(self) -> set[str]:
        num_stacks = self.config["arch"]["args"].get("num_stacks", 2)
        parts = ["final"] + [f"stack{i + 1}" for i in range(num_stacks)]
        train = {"train/loss", "train/lr"} | {f"train/{task}/{part}" for task in ("seg", "conn")
                                             for part in parts}
        if self.valid_data_loader is None:
            return train
        valid = {"val/loss", "val/seg", "val/conn"} | {f"val/{name}" for name in VALIDATION_METRICS}
        return train | valid

    def _extra_state(self) -> dict[str, Any]:
        return {"scaler": self.scaler.state_dict(), "global_step": self.global_step}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.global_step = state.get("global_step", 0)

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        self.model.train()
        self.data_loader.set_epoch(epoch)
        sums: dict[str, Tensor] = defaultdict(lambda: torch.zeros((), device=self.device))
        batches = torch.zeros((), device=self.device)
        skipped = 0
        bar = tqdm(self.data_loader, desc=f"epoch {epoch}/{self.epochs}", leave=False,
                   disable=not self.context.is_main, dynamic_ncols=True)
        for batch_index, batch in enumerate(bar):
            self._stop_if_interrupted()
            batch = self._to_device(batch)
            terms = self._step(batch, epoch, batch_index)
            if terms is None:
                skipped += 1
                logger.warning("non-finite loss at epoch %d, batch %d: batch skipped", epoch, batch_index)
                continue
            for name, value in terms.items():
                sums[name] += value.detach()
            batches += 1
            self.global_step += 1
            if batch_index % self.log_step == 0:
                loss = terms["total"].item()
                bar.set_postfix(loss=f"{loss:.4f}")
                if self.writer is not None:
                    self.writer.add_scalar("batch/train_loss", loss, self.global_step)
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

    def _step(self, batch: dict[str, Tensor], epoch: int, batch_index: int) -> dict[str, Tensor] | None:
        terms = forward_loss(self.model, self.criterion, batch, self.autocast_dtype, self.channels_last)
        loss = terms["total"]
        finite = torch.isfinite(loss).float()
        if self.context.enabled:
            finite = all_reduce_sum(finite) / self.context.world_size
        if finite.item() < 1:
            if self.skip_nonfinite:
                return None
            kept = (f"the last good checkpoint is {self.last_checkpoint}" if self.last_checkpoint
                    else "no checkpoint was saved before it")
            raise UserError(f"the loss is {loss.item()} (not finite) at epoch {epoch}, batch "
                            f"{batch_index}; training stopped, {kept}; set "
                            f"trainer.skip_nonfinite_loss to skip such batches instead")
        optimise(loss, self.model, self.optimizer, self.scaler, self.clip_grad_norm)
        return terms

    def _valid_epoch(self, epoch: int) -> dict[str, float]:
        if self.valid_data_loader is None:
            return {}
        metrics = RoadMetrics(rho=self.rho)
        losses = torch.zeros(3, dtype=torch.float64)
        for index, batch in enumerate(tqdm(self.valid_data_loader, desc="validation", leave=False,
                                           disable=not self.context.is_main, dynamic_ncols=True)):
            seg, conn = self.predictor(batch["image"][0])
            mask, labels = batch["mask"][0], batch["conn"][0]
            seg_loss = soft_iou_loss(seg[None], mask[None])
            conn_loss = balanced_cross_entropy(conn[None], labels[None])
            losses += torch.tensor([seg_loss.item(), conn_loss.item(), 1.0], dtype=torch.float64)
            pred_mask, pred_conn = seg.argmax(0), conn.argmax(0)
            metrics.update(pred_mask.numpy(), mask.numpy(), pred_conn.numpy(), labels.numpy())
            if index == 0 and epoch % self.image_period == 0:
                self._write_images(batch, pred_mask, seg.softmax(0)[1], pred_conn, epoch)
        losses = all_reduce_sum(losses)
        metrics.load_state_tensor(all_reduce_sum(metrics.state_tensor()))
        result = metrics.result()
        count = max(losses[2].item(), 1.0)
        log = {"val/seg": losses[0].item() / count, "val/conn": losses[1].item() / count}
        log["val/loss"] = log["val/seg"] + log["val/conn"]
        log.update({f"val/{name}": result[name] for name in VALIDATION_METRICS})
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

    def _write_images(self, batch: dict[str, Any], pred_mask: Tensor, road_prob: Tensor,
                      pred_conn: Tensor, epoch: int, size: int = 256) -> None:
        """A fixed central crop of the first validation tile: input, truth and prediction."""
        if self.writer is None:
            return
        height, width = pred_mask.shape
        top, left = max((height - size) // 2, 0), max((width - size) // 2, 0)
        window = (slice(top, top + size), slice(left, left + size))
        settings = self.config["data_loader"]["args"]
        mean = torch.tensor(settings["mean"]).view(3, 1, 1)
        std = torch.tensor(settings["std"]).view(3, 1, 1)
        image = (batch["image"][0][(slice(None), *window)] * std + mean).clamp(0, 1)
        self.writer.add_image("val/image", image, epoch)
        self.writer.add_image("val/mask_true", batch["mask"][0][window].float()[None], epoch)
        self.writer.add_image("val/road_probability", road_prob[window][None], epoch)
        self.writer.add_image("val/connectivity_true",
                              colorize(batch["conn"][0][window].numpy()), epoch, dataformats="HWC")
        self.writer.add_image("val/connectivity_pred",
                              colorize(pred_conn[window].numpy().astype("uint8")), epoch,
                              dataformats="HWC")
