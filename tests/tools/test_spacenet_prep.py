"""SpaceNet 3 preparation command (tools/spacenet.py) on a tiny fake AOI folder."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.enums import ColorInterp

from data_loader.tiles import read_raster, stretch_to_uint8
from roads.georeference import read_georeference
from tools.spacenet import LABEL_NAME, assign_splits, tile_stem

REPO = Path(__file__).resolve().parents[2]
SAMPLES = Path("/work/shared/spacenet3-geojson-sample")
SIZE = 130
# The real label files cover 1300 px of 2.7e-6 deg: fake images cover them with 130 px of 2.7e-5.
CORNERS = {990: (-115.2092376, 36.1809477), 995: (-115.2092376, 36.1984977)}


def write_raw_tiff(path: Path, bands: int, corner: tuple, seed: int, crs="EPSG:4326",
                   alpha: np.ndarray | None = None, **options) -> None:
    """A SpaceNet-like uint16 tile of 11-bit values in EPSG:4326 (as distributed); with `alpha`,
    an RGBA tile whose fourth band is an alpha band; other extra bands are undefined."""
    image = np.random.default_rng(seed).integers(1, 2048, (bands, SIZE, SIZE), dtype=np.uint16)
    colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue] + [
        ColorInterp.undefined] * (bands - 3)
    if alpha is not None:
        image = np.concatenate([image, alpha[None].astype(np.uint16)])
        colorinterp.append(ColorInterp.alpha)
        options["alpha"] = "yes"  # TIFF ExtraSamples = unassociated alpha
    with rasterio.open(path, "w", driver="GTiff", height=SIZE, width=SIZE, count=len(image),
                       dtype="uint16", crs=crs, transform=Affine(2.7e-5, 0, corner[0], 0, -2.7e-5,
                                                                 corner[1]), **options) as out:
        out.write(image)
        out.colorinterp = colorinterp


@pytest.fixture(scope="module")
def aoi(tmp_path_factory) -> Path:
    """Both label layouts, a MultiLineString, an empty collection and every kind of bad tile."""
    src = tmp_path_factory.mktemp("AOI_2_Vegas_Roads_Train")
    images, new, old = src / "RGB-PanSharpen", src / "geojson_roads", src / "geojson/spacenetroads"
    for folder in (images, new, old):
        folder.mkdir(parents=True)

    def image(n: int, bands: int = 3, corner=CORNERS[990]) -> Path:
        path = images / f"RGB-PanSharpen_AOI_2_Vegas_img{n}.tif"
        write_raw_tiff(path, bands, corner, seed=n)
        return path

    def labels(n: int, folder: Path = new) -> Path:
        name = (f"SN3_roads_train_AOI_2_Vegas_geojson_roads_img{n}.geojson" if folder == new
                else f"spacenetroads_AOI_2_Vegas_img{n}.geojson")
        return folder / name

    image(990)
    shutil.copyfile(SAMPLES / "AOI_2_Vegas_img990.geojson", labels(990))
    image(995, corner=CORNERS[995])  # old layout, holds a MultiLineString
    shutil.copyfile(SAMPLES / "AOI_2_Vegas_img995.geojson", labels(995, old))
    image(5)
    labels(5).write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    image(6)  # orphan image
    shutil.copyfile(SAMPLES / "AOI_2_Vegas_img99.geojson", labels(7))  # orphan labels
    truncated = image(8)
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    shutil.copyfile(SAMPLES / "AOI_2_Vegas_img990.geojson", labels(8))
    image(9, bands=4)
    shutil.copyfile(SAMPLES / "AOI_2_Vegas_img990.geojson", labels(9))
    image(10)
    labels(10).write_text('{"type": "FeatureCollection", "features": [')
    return src


def prepare(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.spacenet", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def prepared(aoi, tmp_path_factory):
    dst = tmp_path_factory.mktemp("spacenet3")
    return prepare("--src", aoi, "--dst", dst, "--split", "train"), dst


def test_good_tiles_are_written_and_bad_ones_skipped_with_a_summary(prepared):
    result, dst = prepared
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert f"wrote 3 tiles to {dst} (train 3)" in result.stdout
    assert "skipped 5 tiles" in result.stdout
    for reason in ("image without labels: 1", "labels without image: 1",
                   "unreadable or truncated TIFF: 1", "wrong band count: 1", "invalid GeoJSON: 1"):
        assert reason in result.stdout
    for name in ("img6.tif", "img7.geojson", "img8.tif", "img9.tif", "img10.geojson"):
        assert name in result.stderr  # each warning names its file
    stems = ["AOI_2_Vegas_img5", "AOI_2_Vegas_img990", "AOI_2_Vegas_img995"]
    for folder, ext in (("images", "tif"), ("masks", "png"), ("valid", "png"),
                        ("geojson", "geojson")):
        names = sorted(p.name for p in (dst / "train" / folder).iterdir())
        assert names == [f"{stem}.{ext}" for stem in stems]


def test_images_are_8bit_and_keep_their_georeference(prepared, aoi):
    _, dst = prepared
    for n in (990, 995):
        path = dst / "train/images" / f"AOI_2_Vegas_img{n}.tif"
        with rasterio.open(path) as dataset:
            image = dataset.read().transpose(1, 2, 0)
        assert image.dtype == np.uint8 and image.shape == (SIZE, SIZE, 3)
        assert image.min() == 0 and image.max() == 255  # the 2..98 % stretch saturates both ends
        georeference = read_georeference(path)
        assert georeference.crs.to_epsg() == 4326
        assert georeference.transform == Affine(2.7e-5, 0, CORNERS[n][0], 0, -2.7e-5, CORNERS[n][1])


def test_masks_show_the_roads_and_geojson_is_copied(prepared, aoi):
    _, dst = prepared
    masks = {n: cv2.imread(str(dst / f"train/masks/AOI_2_Vegas_img{n}.png"), cv2.IMREAD_UNCHANGED)
             for n in (5, 990, 995)}
    assert all(mask.shape == (SIZE, SIZE) and mask.dtype == np.uint8 for mask in masks.values())
    assert (masks[5] == 0).all()
    for n in (990, 995):
        assert set(np.unique(masks[n])) == {0, 255}
        assert 0.05 < (masks[n] > 0).mean() < 0.5
    copied = (dst / "train/geojson/AOI_2_Vegas_img995.geojson").read_bytes()
    assert copied == (SAMPLES / "AOI_2_Vegas_img995.geojson").read_bytes()


def test_random_split_by_fractions(aoi, tmp_path):
    result = prepare("--src", aoi, "--dst", tmp_path, "--val-fraction", "0.34",
                     "--test-fraction", "0.34", "--seed", "1")
    assert result.returncode == 0, result.stderr
    assert "(test 1, train 1, val 1)" in result.stdout
    for split in ("train", "val", "test"):
        assert len(list((tmp_path / split / "images").iterdir())) == 1


@pytest.mark.parametrize("args, message", [
    (["--src", "{tmp}/missing"], "missing: source folder not found"),
    (["--src", "{tmp}"], "no tiles found"),
    (["--src", "{aoi}", "--split", "train", "--val-fraction", "0.2"], "--split cannot be combined"),
    (["--src", "{aoi}", "--val-fraction", "0.7", "--test-fraction", "0.7"], "sum to at most 1"),
    (["--src", "{aoi}", "--bands", "0,1,2"], "--bands: expected 3"),
    (["--src", "{aoi}", "--nodata-color", "0,0"], "--nodata-color: expected 3"),
    (["--src", "{aoi}", "--nodata-color", "black"], "expected comma-separated numbers"),
    (["--src", "{aoi}", "--workers", "0"], "--workers must be >= 1"),
])
def test_bad_input_is_one_line_without_traceback(aoi, tmp_path, args, message):
    args = [a.format(tmp=tmp_path, aoi=aoi) for a in args]
    result = prepare(*args, "--dst", tmp_path / "out")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert not (tmp_path / "out").exists()


def test_stems_pair_both_label_layouts_with_the_image_names():
    assert tile_stem("SN3_roads_train_AOI_2_Vegas_geojson_roads_img12.geojson", LABEL_NAME) == \
        "AOI_2_Vegas_img12"
    assert tile_stem("spacenetroads_AOI_5_Khartoum_img007.geojson", LABEL_NAME) == \
        "AOI_5_Khartoum_img7"
    assert tile_stem("notes.geojson", LABEL_NAME) is None


def test_percentile_stretch_maps_the_2nd_and_98th_percentiles_to_0_and_255():
    band = np.arange(1, 101, dtype=np.uint16).reshape(10, 10)
    image = np.stack([band, band * 2, band + 1000], axis=-1)
    image[0, 0] = 0  # no-data pixel: left out of the percentiles, stays black
    out = stretch_to_uint8(image)
    assert out.dtype == np.uint8
    assert (out[0, 0] == 0).all()
    low, high = np.percentile(np.arange(2, 101), [2, 98])  # 3.96 and 98.04 over the valid 2..100
    assert out[3, 0, 0] == round((31 - low) * 255 / (high - low)) == 73
    assert np.abs(out[..., 0].astype(int) - out[..., 2]).max() <= 1  # a band offset changes nothing
    assert (out[0, 1:3, 0] == 0).all() and (out[9, 8:, 0] == 255).all()


def test_assign_splits_is_seeded_and_exhaustive():
    stems = [f"AOI_2_Vegas_img{n}" for n in range(20)]
    splits = assign_splits(stems, None, 0.1, 0.25, seed=4)
    assert splits == assign_splits(list(reversed(stems)), None, 0.1, 0.25, seed=4)
    assert sorted(splits) == sorted(stems)
    assert sorted(splits.values()).count("val") == 2 and list(splits.values()).count("test") == 5
    assert set(assign_splits(stems, "train", 0.1, 0.1, seed=0).values()) == {"train"}


FIXTURE = REPO / "tests" / "data" / "spacenet-vegas-pan"


@pytest.fixture(scope="module")
def real_formats(tmp_path_factory) -> Path:
    """Tiles as SpaceNet distributes them: LZW RGB + alpha with transparent corners (the tile the
    old tifffile reader skipped), a UTM copy, the real PAN crop, and a raster without CRS."""
    src = tmp_path_factory.mktemp("AOI_2_Vegas_formats")
    images, labels = src / "RGB-PanSharpen", src / "geojson_roads"
    images.mkdir()
    labels.mkdir()
    alpha = np.full((SIZE, SIZE), 255, np.uint8)
    alpha[:30, :30] = alpha[-20:, -40:] = 0

    def label(n: int, source: Path = SAMPLES / "AOI_2_Vegas_img990.geojson") -> None:
        name = f"SN3_roads_train_AOI_2_Vegas_geojson_roads_img{n}.geojson"
        shutil.copyfile(source, labels / name)

    write_raw_tiff(images / "RGB-PanSharpen_AOI_2_Vegas_img1.tif", 3, CORNERS[990], seed=1,
                   alpha=alpha, compress="lzw", photometric="rgb")
    label(1)
    write_raw_tiff(images / "RGB-PanSharpen_AOI_2_Vegas_img2.tif", 3, (0, 0), seed=2, crs=None)
    label(2)
    pan = src / "PAN"
    pan.mkdir()
    shutil.copyfile(FIXTURE / "pan_crop.tif", pan / "PAN_AOI_2_Vegas_img3.tif")
    label(3, FIXTURE / "roads.geojson")
    return src


def test_lzw_rgba_tile_prepares_with_its_validity(real_formats, tmp_path):
    result = prepare("--src", real_formats, "--dst", tmp_path, "--split", "train")
    assert result.returncode == 0, result.stderr
    assert "wrote 1 tiles" in result.stdout and "no georeference: 1" in result.stdout
    assert "img2.tif: no CRS and geotransform, cannot place the GeoJSON labels" in result.stderr
    stem = "AOI_2_Vegas_img1"
    valid = cv2.imread(str(tmp_path / f"train/valid/{stem}.png"), cv2.IMREAD_UNCHANGED)
    alpha = np.full((SIZE, SIZE), 255, np.uint8)
    alpha[:30, :30] = alpha[-20:, -40:] = 0
    np.testing.assert_array_equal(valid, alpha)
    raster = read_raster(tmp_path / f"train/images/{stem}.tif")
    np.testing.assert_array_equal(raster.valid, alpha > 0)  # the image's own no-data mask
    assert (raster.image[alpha == 0] == 0).all()
    assert raster.image[alpha > 0].max() == 255 and raster.image[alpha > 0].min() == 0
    mask = cv2.imread(str(tmp_path / f"train/masks/{stem}.png"), cv2.IMREAD_UNCHANGED)
    assert 0.05 < (mask > 0).mean() < 0.5


def test_real_pan_tile_prepares_from_its_folder(real_formats, tmp_path):
    result = prepare("--src", real_formats, "--dst", tmp_path, "--split", "train",
                     "--image-folder", "PAN")
    assert result.returncode == 0, result.stderr
    assert "wrote 1 tiles" in result.stdout
    assert "roads.geojson: " not in result.stderr  # the copied label file is named for its stem
    assert "road positions lie outside the 256x256 raster" in result.stderr
    raster = read_raster(tmp_path / "train/images/AOI_2_Vegas_img3.tif")
    pan = read_raster(FIXTURE / "pan_crop.tif")
    np.testing.assert_array_equal(raster.image, pan.image)
    assert raster.georeference.transform == pan.georeference.transform
    mask = cv2.imread(str(tmp_path / "train/masks/AOI_2_Vegas_img3.png"), cv2.IMREAD_UNCHANGED)
    with rasterio.open(FIXTURE / "spacenet_mask_crop.tif") as dataset:
        theirs = dataset.read(1) > 0
    assert ((mask > 0) & theirs).sum() / ((mask > 0) | theirs).sum() > 0.5


def test_two_workers_write_the_same_files(aoi, tmp_path):
    one = prepare("--src", aoi, "--dst", tmp_path / "one", "--split", "train")
    two = prepare("--src", aoi, "--dst", tmp_path / "two", "--split", "train", "--workers", "2")
    assert one.returncode == two.returncode == 0, two.stderr
    assert one.stdout.replace("one", "two") == two.stdout
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*.*"))
    assert len(files) == 12
    for path in files:
        assert (tmp_path / "one" / path).read_bytes() == (tmp_path / "two" / path).read_bytes()
