"""The paper's losses: soft-IoU for segmentation, class-balanced cross-entropy for connectivity,
and the joint loss over the final and every stack's intermediate outputs."""
import torch
import torch.nn.functional as F
from torch import Tensor

from model.network import RoadOutputs
from roads.classes import IGNORE_INDEX


def soft_iou_sums(logits: Tensor, target: Tensor, ignore_index: int = IGNORE_INDEX
                  ) -> tuple[Tensor, Tensor]:
    """Soft intersections and unions per image and class, sums over pixels: (B, K) each.

    logits (B, K, H, W); target (B, H, W) class ids, `ignore_index` pixels left out. Sums over
    parts of an image add up to the sums over the image (the evaluation's windows rely on it).
    """
    valid = (target != ignore_index).unsqueeze(1).to(torch.float32)
    probs = logits.float().softmax(dim=1) * valid
    onehot = F.one_hot(target.where(target != ignore_index, 0), logits.shape[1])
    onehot = onehot.permute(0, 3, 1, 2).to(probs.dtype) * valid
    intersection = (probs * onehot).sum(dim=(2, 3))
    union = (probs + onehot - probs * onehot).sum(dim=(2, 3))
    return intersection, union


def soft_iou_from_sums(intersection: Tensor, union: Tensor, eps: float = 1e-6) -> Tensor:
    """-mean_{b,k} I / (U + eps) of `soft_iou_sums`."""
    return -(intersection / (union + eps)).mean()


def soft_iou_loss(logits: Tensor, target: Tensor, ignore_index: int = IGNORE_INDEX,
                  eps: float = 1e-6) -> Tensor:
    """Negative soft Jaccard index, averaged over classes and images.

    logits (B, K, H, W); target (B, H, W) class ids, `ignore_index` pixels left out.
    L = -mean_{b,k} sum(P*G) / (sum(P + G - P*G) + eps), P = softmax(logits), G = one-hot(target).
    """
    return soft_iou_from_sums(*soft_iou_sums(logits, target, ignore_index), eps)


def balanced_class_weights(target: Tensor, num_classes: int,
                           ignore_index: int = IGNORE_INDEX) -> Tensor:
    """Per-batch class weights w_k = 1 / ln(1.02 + n_k / N) over the labelled pixels: (K,)."""
    labelled = target[target != ignore_index]
    counts = torch.bincount(labelled, minlength=num_classes)[:num_classes].float()
    fractions = counts / max(labelled.numel(), 1)
    return 1.0 / torch.log(1.02 + fractions)


def balanced_cross_entropy(logits: Tensor, target: Tensor,
                           ignore_index: int = IGNORE_INDEX) -> Tensor:
    """Cross-entropy weighted by `balanced_class_weights`; logits (B, K, H, W), target (B, H, W)."""
    if not (target != ignore_index).any():
        return logits.sum() * 0.0
    weights = balanced_class_weights(target, logits.shape[1], ignore_index)
    return F.cross_entropy(logits.float(), target, weight=weights, ignore_index=ignore_index)


def weighted_nll_sums(logits: Tensor, target: Tensor, weights: Tensor,
                      ignore_index: int = IGNORE_INDEX) -> tuple[Tensor, Tensor]:
    """(sum of w_y * NLL, sum of w_y) over the labelled pixels: cross-entropy with class weights
    `weights` (K,) is their ratio, and sums over parts of an image add up.

    logits (B, K, H, W); target (B, H, W).
    """
    loss = F.cross_entropy(logits.float(), target, reduction="none", ignore_index=ignore_index)
    labelled = target != ignore_index
    pixel_weights = weights[target.where(labelled, 0)] * labelled
    return (pixel_weights * loss).sum(), pixel_weights.sum()


class JointLoss:
    """Weighted sum of both tasks' losses on the final and on every stack's intermediate outputs.

    Final outputs are compared with the full-resolution targets (`mask`, `conn`), intermediate ones
    with the 1/4-resolution targets (`mask_quarter`, `conn_quarter`). Returns every term by name
    (`seg/final`, `conn/final`, `seg/stack1`, ...) and their weighted sum under `total`.
    """

    def __init__(self, seg_weight: float = 1.0, conn_weight: float = 1.0,
                 final_weight: float = 1.0, intermediate_weight: float = 1.0) -> None:
        self.seg_weight = seg_weight
        self.conn_weight = conn_weight
        self.final_weight = final_weight
        self.intermediate_weight = intermediate_weight

    @staticmethod
    def output_names(num_stacks: int) -> list[str]:
        """The names of the outputs, in the order of `RoadOutputs`' lists: stack1.., final."""
        return [f"stack{index + 1}" for index in range(num_stacks)] + ["final"]

    def term_names(self, num_stacks: int) -> list[str]:
        """Every key `__call__` returns for a network of `num_stacks` stacks."""
        return [f"{task}/{name}" for name in self.output_names(num_stacks)
                for task in ("seg", "conn")] + ["total"]

    def __call__(self, outputs: RoadOutputs, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        names = self.output_names(len(outputs.segmentation) - 1)
        terms: dict[str, Tensor] = {}
        total = outputs.segmentation[-1].new_zeros((), dtype=torch.float32)
        for name, seg, conn in zip(names, outputs.segmentation, outputs.connectivity):
            final = name == "final"
            mask, labels = ((batch["mask"], batch["conn"]) if final
                            else (batch["mask_quarter"], batch["conn_quarter"]))
            weight = self.final_weight if final else self.intermediate_weight
            terms[f"seg/{name}"] = soft_iou_loss(seg, mask)
            terms[f"conn/{name}"] = balanced_cross_entropy(conn, labels)
            total = total + weight * (self.seg_weight * terms[f"seg/{name}"]
                                      + self.conn_weight * terms[f"conn/{name}"])
        terms["total"] = total
        return terms
