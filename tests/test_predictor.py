from types import SimpleNamespace

import pytest
import torch
from torch import nn

from evaluation.predictor import (
    D4_TRANSFORMS,
    PredictorSettings,
    SlidingWindowPredictor,
    axis_windows,
)
from utils.errors import ConfigError
from utils.settings import from_config


class ConvNet(nn.Module):
    """Stand-in for the network: 1x1 convs (pointwise) or two 3x3 convs (receptive radius 2),
    zero-padded like the real network at a tile border."""

    def __init__(self, kernel: int):
        super().__init__()
        torch.manual_seed(0)
        padding = kernel // 2
        self.body = nn.Sequential(nn.Conv2d(3, 8, kernel, padding=padding), nn.ReLU(),
                                  nn.Conv2d(8, 7, kernel, padding=padding))
        self.calls = []

    def forward(self, x):
        self.calls.append((tuple(x.shape), self.training, torch.is_grad_enabled()))
        out = self.body(x)
        return SimpleNamespace(segmentation=[out[:, :2]], connectivity=[out[:, 2:]])


def whole_image(model, image):
    with torch.no_grad():
        out = model(image[None])
    return out.segmentation[-1][0], out.connectivity[-1][0]


@pytest.fixture
def image():
    return torch.randn(3, 300, 200, generator=torch.Generator().manual_seed(0))


def test_axis_windows_layout():
    # Stride 128 - 2 * 16 = 96: starts 0, 96 and the shifted last 300 - 128 = 172. Overlap of the
    # first two is [96, 128), split at 112 (16 px margin each side); overlap of the last two is
    # [172, 224), split at its middle: 223 - p > p - 172 up to p = 197.
    assert axis_windows(300, 128, 16) == [(0, 128, 0, 112), (96, 128, 112, 198),
                                          (172, 128, 198, 300)]
    assert axis_windows(200, 128, 16) == [(0, 128, 0, 100), (72, 128, 100, 200)]
    assert axis_windows(128, 128, 16) == [(0, 128, 0, 128)]
    assert axis_windows(50, 128, 16) == [(0, 50, 0, 50)]


@pytest.mark.parametrize("length", [129, 200, 333, 1300])
@pytest.mark.parametrize("window,margin", [(128, 16), (64, 31), (512, 72)])
def test_axis_windows_tile_the_axis_and_keep_pixels_margin_from_inner_edges(length, window,
                                                                              margin):
    windows = axis_windows(length, window, margin)
    assert windows[0].keep_start == 0 and windows[-1].keep_stop == length
    for before, after in zip(windows, windows[1:]):
        assert before.keep_stop == after.keep_start
    for w in windows:
        assert w.start <= w.keep_start < w.keep_stop <= w.start + w.size
        if w.start > 0:
            assert w.keep_start - w.start >= margin
        if w.start + w.size < length:
            assert w.start + w.size - w.keep_stop >= margin


@pytest.mark.parametrize("kernel", [1, 3])
def test_sliding_window_equals_whole_image_for_local_models(image, kernel):
    model = ConvNet(kernel)
    segmentation, connectivity = SlidingWindowPredictor(model, PredictorSettings(window=128, margin=16))(image)
    expected_seg, expected_conn = whole_image(model, image)
    assert segmentation.shape == (2, 300, 200) and connectivity.shape == (5, 300, 200)
    assert segmentation.dtype == connectivity.dtype == torch.float32
    torch.testing.assert_close(segmentation, expected_seg)
    torch.testing.assert_close(connectivity, expected_conn)
    assert {shape for shape, _, _ in model.calls[:-1]} == {(4, 3, 128, 128), (2, 3, 128, 128)}


def test_margin_smaller_than_receptive_radius_shows_seams(image):
    model = ConvNet(3)
    segmentation, _ = SlidingWindowPredictor(model, PredictorSettings(window=128, margin=0))(image)
    assert not torch.allclose(segmentation, whole_image(model, image)[0], atol=1e-4)


@pytest.mark.parametrize("shape", [(3, 50, 90), (3, 128, 70), (3, 40, 300)])
def test_tiles_smaller_than_a_window_and_non_square(shape):
    model = ConvNet(3)
    image = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    segmentation, connectivity = SlidingWindowPredictor(model, PredictorSettings(window=128, margin=16))(image)
    expected_seg, expected_conn = whole_image(model, image)
    torch.testing.assert_close(segmentation, expected_seg)
    torch.testing.assert_close(connectivity, expected_conn)


def test_batch_size_does_not_change_the_result(image):
    model = ConvNet(3)
    one = SlidingWindowPredictor(model, PredictorSettings(window=128, margin=16, batch_size=1))(image)
    three = SlidingWindowPredictor(model, PredictorSettings(window=128, margin=16, batch_size=3))(image)
    torch.testing.assert_close(one, three, rtol=0, atol=1e-6)


def test_d4_transforms_are_undone_exactly_and_distinct():
    x = torch.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    results = []
    for transform in D4_TRANSFORMS:
        transformed = transform.apply(x)
        assert torch.equal(transform.undo(transformed), x)
        results.append(tuple(transformed[0, 0].flatten().tolist()) + tuple(transformed.shape))
    assert len(set(results)) == 8
    names = [t.name for t in D4_TRANSFORMS]
    assert names == ["identity", "rot90", "rot180", "rot270", "hflip", "vflip", "transpose",
                     "anti_transpose"]
    anti = D4_TRANSFORMS[-1].apply(x)
    assert anti[0, 0, 1, 2] == x[0, 0, 4 - 1 - 2, 5 - 1 - 1]


def test_tta_of_pointwise_model_equals_plain(image):
    model = ConvNet(1)
    plain = SlidingWindowPredictor(model, PredictorSettings(window=128, margin=16))(image)
    tta = SlidingWindowPredictor(model, PredictorSettings(window=128, margin=16, tta=True))(image)
    torch.testing.assert_close(tta, plain)


def test_tta_averages_undone_predictions_of_each_transform(image):
    model = ConvNet(3)
    tta_seg, tta_conn = SlidingWindowPredictor(model, PredictorSettings(window=128, margin=16, tta=True))(image)
    seg = conn = 0
    for transform in D4_TRANSFORMS:
        s, c = whole_image(model, transform.apply(image))
        seg, conn = seg + transform.undo(s), conn + transform.undo(c)
    torch.testing.assert_close(tta_seg, seg / 8)
    torch.testing.assert_close(tta_conn, conn / 8)
    assert not torch.allclose(tta_seg, whole_image(model, image)[0], atol=1e-4)


def test_model_runs_in_eval_without_grad_and_mode_is_restored(image):
    model = ConvNet(1)
    model.train()
    SlidingWindowPredictor(model, PredictorSettings(window=128, margin=16))(image)
    assert model.training
    assert all(not training and not grad for _, training, grad in model.calls)
    model.eval()
    SlidingWindowPredictor(model, PredictorSettings(window=128, margin=16))(image)
    assert not model.training


def test_autocast_gives_float32_logits_close_to_full_precision(image):
    model = ConvNet(1)
    plain, _ = SlidingWindowPredictor(model, PredictorSettings(window=128, margin=16))(image)
    half, _ = SlidingWindowPredictor(model, PredictorSettings(window=128, margin=16),
                                     autocast_dtype=torch.bfloat16)(image)
    assert half.dtype == torch.float32 and half.device.type == "cpu"
    torch.testing.assert_close(half, plain, rtol=0.05, atol=0.05)


def test_window_not_larger_than_two_margins_is_refused_naming_the_key():
    with pytest.raises(ValueError, match="window: .* margin"):
        PredictorSettings(window=64, margin=32)
    with pytest.raises(ConfigError, match="config key 'predictor.window'"):
        from_config(PredictorSettings, {"window": 64, "margin": 32}, "predictor")
