"""The stacked hourglass network: shapes at any size, parameter count, gradients, the GA module."""
import pytest
import torch

from model.blocks import ChannelAttention, GlobalAwareModule, ResidualBlock
from model.network import StackedHourglassRoadNet

DEFAULT_PARAMETERS = 14_956_501  # documented in README ("about 15.0 M")


def small_net(**kwargs) -> StackedHourglassRoadNet:
    settings = dict(num_blocks=1, num_feats=32)
    settings.update(kwargs)
    return StackedHourglassRoadNet(**settings)


@pytest.mark.parametrize("height,width", [(64, 64), (96, 160), (100, 77), (37, 50)])
def test_output_shapes_at_any_size(height, width):
    torch.manual_seed(0)
    net = small_net().eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, height, width))
    quarter = (-(-height // 4), -(-width // 4))
    assert len(out.segmentation) == len(out.connectivity) == 3
    for seg, conn in zip(out.segmentation[:-1], out.connectivity[:-1]):
        assert seg.shape == (2, 2, *quarter)
        assert conn.shape == (2, 5, *quarter)
    assert out.segmentation[-1].shape == (2, 2, height, width)
    assert out.connectivity[-1].shape == (2, 5, height, width)


def test_stack_count_follows_config():
    out = small_net(num_stacks=3).eval()(torch.randn(1, 3, 64, 64))
    assert len(out.segmentation) == 4


def test_default_parameter_count_is_documented_figure():
    net = StackedHourglassRoadNet()
    assert abs(net.num_parameters() - DEFAULT_PARAMETERS) <= 0.01 * DEFAULT_PARAMETERS
    assert "Trainable parameters: 14,956,501" in str(net)


def test_every_parameter_receives_a_gradient():
    torch.manual_seed(0)
    net = small_net()
    out = net(torch.randn(2, 3, 64, 64))
    loss = sum(t.square().mean() for t in out.segmentation + out.connectivity)
    loss.backward()
    without = [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert without == []


def test_global_aware_module_matches_direct_computation():
    torch.manual_seed(0)
    module = GlobalAwareModule(32)
    z = torch.randn(2, 32, 9, 7)
    squeeze, excite = module[0].gate[1].weight[:, :, 0, 0], module[0].gate[3].weight[:, :, 0, 0]
    pooled = z.mean(dim=(2, 3))
    u = torch.sigmoid(torch.relu(pooled @ squeeze.T) @ excite.T)[:, :, None, None]
    z_c = u * z
    v = torch.sigmoid(z_c.mean(dim=1, keepdim=True))
    torch.testing.assert_close(module(z), v * z_c)
    assert squeeze.shape == (2, 32)


@pytest.mark.parametrize("kind,parameters", [("basic", 0), ("se", 2 * 64 * 4)])
def test_block_variants_run_and_differ_only_in_attention(kind, parameters):
    block = ResidualBlock(64, 64, attention=kind)
    ga = ResidualBlock(64, 64, attention="ga")
    attention = sum(p.numel() for p in block.residual[-1].parameters())
    assert attention == parameters
    assert sum(p.numel() for p in ga.parameters()) - sum(p.numel() for p in block.parameters()) \
        == 2 * 64 * 4 - parameters
    assert block(torch.randn(1, 64, 8, 8)).shape == (1, 64, 8, 8)
    assert isinstance(ChannelAttention(64).gate[1].weight, torch.Tensor)


def test_projection_shortcut_when_width_changes():
    block = ResidualBlock(16, 32)
    assert block(torch.randn(1, 16, 8, 8)).shape == (1, 32, 8, 8)
    assert not isinstance(block.shortcut, torch.nn.Identity)


def test_unknown_block_kind_is_a_clear_error():
    with pytest.raises(ValueError, match="block: must be one of"):
        StackedHourglassRoadNet(block="transformer")


def test_initialisation_follows_spec():
    net = small_net()
    conv = net.stem[0]
    assert torch.all(conv.bias == 0)
    expected_std = (2.0 / (7 * 7 * 64)) ** 0.5
    assert abs(conv.weight.std().item() - expected_std) < 0.15 * expected_std
    assert torch.all(net.stem[1].weight == 1)
