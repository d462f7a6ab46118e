import itertools
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import evaluation.predictor
from evaluation.predictor import (
    D4_TRANSFORMS,
    PredictorSettings,
    SlidingWindowPredictor,
    axis_windows,
    fast_dtype_for,
)


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
        self.formats = []

    def forward(self, x):
        self.calls.append((tuple(x.shape), self.training, torch.is_grad_enabled()))
        self.formats.append((x.is_contiguous(memory_format=torch.channels_last),
                             torch.is_autocast_enabled("cpu")))
        out = self.body(x)
        return SimpleNamespace(segmentation=[out[:, :2]], connectivity=[out[:, 2:]])


def whole_image(model, image):
    with torch.no_grad():
        out = model(image[None])
    return out.segmentation[-1][0], out.connectivity[-1][0]


def predict(model, image, **settings):
    """The fp32 prediction of `image` with window 128 and margin 16 unless `settings` say else."""
    settings = {"window": 128, "margin": 16, "precision": "fp32", **settings}
    return SlidingWindowPredictor(model, PredictorSettings(**settings))(image)


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
    for before, after in itertools.pairwise(windows):
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
    segmentation, connectivity = predict(model, image)
    expected_seg, expected_conn = whole_image(model, image)
    assert segmentation.shape == (2, 300, 200) and connectivity.shape == (5, 300, 200)
    assert segmentation.dtype == connectivity.dtype == torch.float32
    torch.testing.assert_close(segmentation, expected_seg)
    torch.testing.assert_close(connectivity, expected_conn)
    assert {shape for shape, _, _ in model.calls[:-1]} == {(4, 3, 128, 128), (2, 3, 128, 128)}


def test_margin_smaller_than_receptive_radius_shows_seams(image):
    model = ConvNet(3)
    segmentation, _ = predict(model, image, margin=0)
    assert not torch.allclose(segmentation, whole_image(model, image)[0], atol=1e-4)


@pytest.mark.parametrize("shape", [(3, 50, 90), (3, 128, 70), (3, 40, 300)])
def test_tiles_smaller_than_a_window_and_non_square(shape):
    model = ConvNet(3)
    image = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    segmentation, connectivity = predict(model, image)
    expected_seg, expected_conn = whole_image(model, image)
    torch.testing.assert_close(segmentation, expected_seg)
    torch.testing.assert_close(connectivity, expected_conn)


def test_batch_size_does_not_change_the_result(image):
    model = ConvNet(3)
    one = predict(model, image, batch_size=1)
    three = predict(model, image, batch_size=3)
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
    plain = predict(model, image)
    tta = predict(model, image, tta=True)
    torch.testing.assert_close(tta, plain)


def assert_tta_mean(model, image, tta_seg, tta_conn) -> None:
    """The TTA logits are the mean of the 8 transformed predictions, each undone."""
    seg = conn = 0
    for transform in D4_TRANSFORMS:
        s, c = whole_image(model, transform.apply(image))
        seg, conn = seg + transform.undo(s), conn + transform.undo(c)
    torch.testing.assert_close(tta_seg, seg / 8)
    torch.testing.assert_close(tta_conn, conn / 8)


def test_tta_averages_undone_predictions_of_each_transform(image):
    model = ConvNet(3)
    tta_seg, tta_conn = predict(model, image, tta=True)
    assert_tta_mean(model, image, tta_seg, tta_conn)
    assert not torch.allclose(tta_seg, whole_image(model, image)[0], atol=1e-4)


def test_model_runs_in_eval_without_grad_and_mode_is_restored(image):
    model = ConvNet(1)
    model.train()
    predict(model, image)
    assert model.training
    assert all(not training and not grad for _, training, grad in model.calls)
    model.eval()
    predict(model, image)
    assert not model.training


def test_fp32_is_the_eager_network_bit_for_bit():
    model = ConvNet(3)
    image = torch.randn(3, 100, 120, generator=torch.Generator().manual_seed(2))
    segmentation, connectivity = predict(model, image)
    assert model.formats == [(False, False)]
    expected_seg, expected_conn = whole_image(model, image)
    assert torch.equal(segmentation, expected_seg) and torch.equal(connectivity, expected_conn)


def test_tta_batches_every_window_and_transform_together(image):
    # 3 x 2 windows of 128 x 128 under 8 transforms: 48 crops in 12 full batches of 4 (one batch
    # per group of windows would run 16 batches, 8 of them of 2 crops).
    model = ConvNet(3)
    predict(model, image, tta=True)
    assert [shape for shape, _, _ in model.calls] == [(4, 3, 128, 128)] * 12


def test_tta_of_a_non_square_window_batches_each_transformed_shape_apart():
    model = ConvNet(3)
    image = torch.randn(3, 50, 90, generator=torch.Generator().manual_seed(3))
    tta_seg, tta_conn = predict(model, image, tta=True, batch_size=8)
    assert [shape for shape, _, _ in model.calls] == [(4, 3, 50, 90), (4, 3, 90, 50)]
    assert_tta_mean(model, image, tta_seg, tta_conn)


def test_tta_result_does_not_depend_on_the_batch_size(image):
    model = ConvNet(3)
    one = predict(model, image, tta=True, batch_size=1)
    five = predict(model, image, tta=True, batch_size=5)
    torch.testing.assert_close(one, five, rtol=0, atol=1e-6)


def test_auto_precision_runs_bf16_autocast_channels_last_where_supported(image, monkeypatch):
    monkeypatch.setattr(evaluation.predictor, "fast_dtype_for", lambda device: torch.bfloat16)
    model = ConvNet(1)
    plain, _ = predict(model, image)
    model.formats.clear()
    fast, _ = predict(model, image, precision="auto")
    assert set(model.formats) == {(True, True)}
    assert fast.dtype == torch.float32 and fast.device.type == "cpu"
    assert fast.is_contiguous()
    torch.testing.assert_close(fast, plain, rtol=0.05, atol=0.05)
    assert not torch.equal(fast, plain)


def test_auto_precision_is_fp32_where_no_fast_dtype_exists(image, monkeypatch):
    monkeypatch.setattr(evaluation.predictor, "fast_dtype_for", lambda device: None)
    model = ConvNet(3)
    fast = predict(model, image, precision="auto")
    assert set(model.formats) == {(False, False)}
    plain = predict(model, image)
    assert torch.equal(fast[0], plain[0]) and torch.equal(fast[1], plain[1])


def test_fast_dtype_for_the_cpu_follows_its_bf16_support():
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert fast_dtype_for(torch.device("cpu")) == (torch.bfloat16 if native else None)
    assert fast_dtype_for(torch.device("meta")) is None


def test_default_settings():
    assert PredictorSettings() == PredictorSettings(window=512, margin=72, batch_size=4,
                                                    tta=False, precision="auto", compile=False)


@pytest.mark.parametrize("settings,message", [
    (dict(window=64, margin=32), "window: must exceed 2 * margin = 64, got 64"),
    (dict(margin=-1), "margin: must be >= 0, got -1"),
    (dict(batch_size=0), "batch_size: must be >= 1, got 0"),
    (dict(window=512.0), "window: expected an integer"),
    (dict(tta="yes"), "tta: expected true or false"),
    (dict(precision="fp16"), "precision: must be one of fp32, auto, got 'fp16'"),
])
def test_invalid_settings_name_the_parameter(settings, message):
    with pytest.raises(ValueError, match="^" + message.replace("*", r"\*")):
        PredictorSettings(**settings)


@pytest.mark.slow
def test_compiled_network_is_reused_across_tiles_and_matches_eager(image):
    model = ConvNet(3)
    predictor = SlidingWindowPredictor(model, PredictorSettings(window=128, margin=16,
                                                                precision="fp32", compile=True))
    for tile in (image, image.flip(-1)):
        compiled = predictor(tile)
        eager = predict(model, tile)
        torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-4)
    assert predictor._network is not model
