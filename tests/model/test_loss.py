"""The segmentation, connectivity and joint losses on hand-made cases."""
import math

import pytest
import torch

from model.loss import JointLoss, balanced_class_weights, balanced_cross_entropy, soft_iou_loss
from model.network import RoadOutputs


def one_hot_logits(target: torch.Tensor, classes: int, scale: float = 50.0) -> torch.Tensor:
    return torch.nn.functional.one_hot(target, classes).permute(0, 3, 1, 2).float() * scale


def test_soft_iou_perfect_prediction_is_minus_one():
    target = torch.tensor([[[0, 1], [1, 1]]])
    assert soft_iou_loss(one_hot_logits(target, 2), target).item() == pytest.approx(-1.0, abs=1e-4)


def test_soft_iou_uniform_prediction():
    # P = 0.5 everywhere. Road: 3 of 4 pixels -> I = 1.5, U = 0.5*4 + 3 - 1.5 = 3.5.
    # Background: 1 pixel -> I = 0.5, U = 2 + 1 - 0.5 = 2.5. Mean -(1.5/3.5 + 0.5/2.5)/2.
    target = torch.tensor([[[0, 1], [1, 1]]])
    expected = -(1.5 / 3.5 + 0.5 / 2.5) / 2
    loss = soft_iou_loss(torch.zeros(1, 2, 2, 2), target).item()
    assert loss == pytest.approx(expected, abs=1e-4)


def test_soft_iou_ignores_255():
    target = torch.tensor([[[0, 1], [255, 255]]])
    logits = one_hot_logits(torch.tensor([[[0, 1], [0, 0]]]), 2)
    assert soft_iou_loss(logits, target).item() == pytest.approx(-1.0, abs=1e-4)


def test_class_weight_formula():
    target = torch.tensor([[[0, 0, 0, 2], [1, 255, 0, 0]]])
    weights = balanced_class_weights(target, 5)
    n = 7
    expected = [1 / math.log(1.02 + c / n) for c in (5, 1, 1, 0, 0)]
    torch.testing.assert_close(weights, torch.tensor(expected))


def test_balanced_cross_entropy_perfect_and_uniform():
    target = torch.tensor([[[0, 0, 2], [1, 4, 255]]])
    perfect = one_hot_logits(target.clamp(max=4), 5)
    assert balanced_cross_entropy(perfect, target).item() < 1e-6
    # Uniform logits: every pixel costs ln 5, whatever the weights.
    uniform = balanced_cross_entropy(torch.zeros(1, 5, 2, 3), target).item()
    assert uniform == pytest.approx(math.log(5), abs=1e-4)


def test_balanced_cross_entropy_ignores_255():
    target = torch.tensor([[[0, 255]]])
    logits = torch.zeros(1, 5, 1, 2)
    logits[0, 0, 0, 0] = 50.0
    assert balanced_cross_entropy(logits, target).item() < 1e-6
    all_ignored = balanced_cross_entropy(logits, torch.full((1, 1, 2), 255))
    assert all_ignored.item() == 0.0


def test_joint_loss_terms_and_weights():
    mask = torch.tensor([[[0, 1, 1, 0]] * 4])
    conn = mask * 2
    quarter_mask, quarter_conn = mask[:, :1, :1], conn[:, :1, :1]
    batch = {"mask": mask, "conn": conn, "mask_quarter": quarter_mask, "conn_quarter": quarter_conn}
    outputs = RoadOutputs(
        segmentation=[torch.zeros(1, 2, 1, 1), torch.zeros(1, 2, 1, 1), one_hot_logits(mask, 2)],
        connectivity=[torch.zeros(1, 5, 1, 1), torch.zeros(1, 5, 1, 1), one_hot_logits(conn, 5)],
    )
    terms = JointLoss(seg_weight=2.0, intermediate_weight=0.5)(outputs, batch)
    assert set(terms) == {"seg/final", "conn/final", "seg/stack1", "conn/stack1", "seg/stack2",
                          "conn/stack2", "total"}
    assert terms["seg/final"].item() == pytest.approx(-1.0, abs=1e-4)
    expected = (2 * terms["seg/final"] + terms["conn/final"]
                + 0.5 * (2 * terms["seg/stack1"] + terms["conn/stack1"]
                         + 2 * terms["seg/stack2"] + terms["conn/stack2"]))
    assert terms["total"].item() == pytest.approx(expected.item(), abs=1e-4)



def test_joint_loss_leaves_out_invalid_pixels_at_both_resolutions():
    """Targets 255 at no-data pixels (the left half): the loss is that of the valid half alone,
    whatever the network predicts on the no-data."""
    generator = torch.Generator().manual_seed(0)
    mask = (torch.rand(2, 8, 8, generator=generator) > 0.5).long()
    conn = torch.randint(0, 5, (2, 8, 8), generator=generator)
    quarter_mask, quarter_conn = mask[:, ::4, ::4], conn[:, ::4, ::4]

    def outputs(full: int, quarter: int) -> RoadOutputs:
        def logits(channels, size):
            return torch.randn(2, channels, size, size, generator=generator)
        return RoadOutputs(segmentation=[logits(2, quarter), logits(2, full)],
                           connectivity=[logits(5, quarter), logits(5, full)])

    predicted = outputs(8, 2)
    ignored = {"mask": mask.clone(), "conn": conn.clone(), "mask_quarter": quarter_mask.clone(),
               "conn_quarter": quarter_conn.clone()}
    for key, size in (("mask", 4), ("conn", 4), ("mask_quarter", 1), ("conn_quarter", 1)):
        ignored[key][..., :size] = 255
    valid_half = {"mask": mask[..., 4:], "conn": conn[..., 4:],
                  "mask_quarter": quarter_mask[..., 1:], "conn_quarter": quarter_conn[..., 1:]}
    cropped = RoadOutputs(segmentation=[predicted.segmentation[0][..., 1:],
                                        predicted.segmentation[1][..., 4:]],
                          connectivity=[predicted.connectivity[0][..., 1:],
                                        predicted.connectivity[1][..., 4:]])
    loss = JointLoss()
    whole, half = loss(predicted, ignored), loss(cropped, valid_half)
    for name in ("seg/final", "seg/stack1", "conn/final", "conn/stack1", "total"):
        assert whole[name].item() == pytest.approx(half[name].item(), abs=1e-5), name
