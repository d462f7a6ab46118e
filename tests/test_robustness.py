"""Robustness of the commands: interrupted and resumed runs, untrusted checkpoints, bad configuration
and bad data, each through train.py, test.py or `python -m tools.spacenet`.

Most cases run the command's `if __name__ == "__main__"` block in this process (runpy with
`sys.argv` set), the very code a user's command line runs, without paying 5-10 s of imports per case.
The signal tests run train.py as a real process group, as Ctrl-C in a terminal would reach it.
"""
import contextlib
import io
import json
import logging
import os
import pickle
import re
import runpy
import shutil
import signal
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import pytest
import rasterio
import torch

import data_loader.tiles as tiles
import model.loss as module_loss
from tests.conftest import REPO, run_command, tiny_config

SCRIPTS = {"train.py": REPO / "train.py", "test.py": REPO / "test.py",
           "tools.spacenet": REPO / "tools" / "spacenet.py"}
DROP = object()
"""Marks a config key to delete in `Workspace.config`."""

TRAIN_IMAGE = "train/images/AOI_2_Vegas_img1.tif"
TRAIN_MASK = "train/masks/AOI_2_Vegas_img1.png"
TEST_GEOJSON = "test/geojson/AOI_2_Vegas_img4.geojson"


class Outcome(NamedTuple):
    code: int
    stderr: str


def run_main(command: str, *args: object) -> Outcome:
    """`python <command> <args>` run in this process: its exit code and everything it wrote to stderr.

    Warnings are written to the captured stderr as the interpreter would; an exception escaping the
    command is written there as a traceback. The global state a command sets (root logging handlers,
    deterministic algorithms, the once-per-process odd-mask warning) is restored afterwards. PyTorch
    runs one thread: on a loaded machine two threads stall each other at every OpenMP barrier, which
    made a tiny training take a minute instead of a second.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    deterministic, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    argv, stderr, code = sys.argv, io.StringIO(), -1
    sys.argv = [str(SCRIPTS[command]), *map(str, args)]
    torch.set_num_threads(1)
    try:
        with contextlib.redirect_stderr(stderr), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                runpy.run_path(str(SCRIPTS[command]), run_name="__main__")
            except SystemExit as exit_:
                code = exit_.code
            except BaseException:
                stderr.write(traceback.format_exc())
        for warning in caught:
            stderr.write(warnings.formatwarning(warning.message, warning.category, warning.filename,
                                                warning.lineno))
    finally:
        sys.argv = argv
        for handler in set(root.handlers) - set(handlers):
            handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
        torch.use_deterministic_algorithms(deterministic)
        torch.set_num_threads(threads)
        tiles._odd_mask_warned = False
    return Outcome(code, stderr.getvalue())


def set_key(config: dict, dotted_key: str, value: object) -> None:
    *parents, leaf = dotted_key.split(".")
    node = config
    for key in parents:
        node = node[key]
    if value is DROP:
        del node[leaf]
    else:
        node[leaf] = value


def run_folder(save_dir: Path) -> Path:
    """The newest run folder of the toy config under `save_dir`."""
    return sorted((save_dir / "models" / "toy-spacenet").iterdir())[-1]


@pytest.fixture(scope="module")
def trained(tiny_dataset, tmp_path_factory) -> Path:
    """Run folder of a 2-epoch tiny training: checkpoint-epoch1.pth, checkpoint-epoch2.pth, ..."""
    save_dir = tmp_path_factory.mktemp("trained")
    path = save_dir / "config.json"
    path.write_text(json.dumps(tiny_config(tiny_dataset, save_dir)))
    outcome = run_main("train.py", "-c", path)
    assert outcome.code == 0, outcome.stderr
    return run_folder(save_dir)


@dataclass
class Workspace:
    """What a case builds its bad input from; nothing here is modified, only copied."""

    tmp: Path
    data: Path
    trained: Path

    @property
    def marker(self) -> Path:
        """A file that a crafted checkpoint tries to create when it is unpickled."""
        return self.tmp / "created-by-unpickling"

    def config(self, changes: dict | None = None) -> Path:
        """A 1-epoch tiny config with `changes` ({"dotted.key": value or DROP}) applied."""
        config = tiny_config(self.data, self.tmp / "saved", epochs=1)
        for key, value in (changes or {}).items():
            set_key(config, key, value)
        path = self.tmp / "config.json"
        path.write_text(json.dumps(config))
        return path

    def dataset(self, damage: Callable[[Path], None]) -> Path:
        """A copy of the tiny dataset (without its label cache) with `damage` applied to it."""
        root = self.tmp / "data"
        shutil.copytree(self.data, root, ignore=shutil.ignore_patterns(".cache"))
        damage(root)
        return root

    def train_on(self, damage: Callable[[Path], None]) -> list:
        """train.py arguments for one epoch on a damaged copy of the dataset."""
        return ["-c", self.config(), "--set", f"data_loader.args.data_dir={self.dataset(damage)}"]

    def test_on(self, damage: Callable[[Path], None], *args: str) -> list:
        """test.py arguments evaluating the trained network on a damaged copy of the dataset."""
        return ["-r", self.trained / "model_best.pth", "-c", self.config(), "--set",
                f"data_loader.args.data_dir={self.dataset(damage)}", "--out", self.tmp / "out", *args]

    def read_only_folder(self) -> Path:
        folder = self.tmp / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        if os.access(folder, os.W_OK):
            pytest.skip("running as root: folder permissions do not stop writes")
        return folder

    def regular_file(self) -> Path:
        path = self.tmp / "a-file"
        path.write_text("not a folder")
        return path


@pytest.fixture
def workspace(tmp_path, tiny_dataset, trained) -> Workspace:
    return Workspace(tmp_path, tiny_dataset, trained)


class CodeOnUnpickling:
    """Unpickling this creates `path`: what a malicious checkpoint could do instead."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def crafted_checkpoint(w: Workspace, with_torch: bool) -> Path:
    path = w.tmp / ("crafted.pth" if with_torch else "crafted.pkl")
    state = {"state_dict": {}, "epoch": 1, "payload": CodeOnUnpickling(w.marker)}
    if with_torch:
        torch.save(state, path)
    else:
        path.write_bytes(pickle.dumps(state))
    return path


def truncated_checkpoint(w: Workspace) -> Path:
    path = w.tmp / "truncated.pth"
    content = (w.trained / "checkpoint-epoch1.pth").read_bytes()
    path.write_bytes(content[: len(content) // 2])
    return path


def junk_checkpoint(w: Workspace) -> Path:
    """Four bytes that make torch's unpickler fail with `struct.error`, not an UnpicklingError."""
    path = w.tmp / "junk.pth"
    path.write_bytes(b"junk")
    return path


# Damage done to a copy of the tiny dataset.

def overwrite(relative: str, content: bytes) -> Callable[[Path], None]:
    return lambda root: (root / relative).write_bytes(content)


def cut_in_half(relative: str) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        content = (root / relative).read_bytes()
        (root / relative).write_bytes(content[: len(content) // 2])
    return damage


def remove(relative: str) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        if (root / relative).is_dir():
            shutil.rmtree(root / relative)
        else:
            (root / relative).unlink()
    return damage


def empty_folder(relative: str) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        shutil.rmtree(root / relative)
        (root / relative).mkdir()
    return damage


def write_tiff(relative: str, shape: tuple[int, ...], dtype: type) -> Callable[[Path], None]:
    """A TIFF of `shape` (H, W) or (H, W, bands) filled with 100, without georeference; bands
    past three are extra samples of no declared meaning (not alpha)."""
    def damage(root: Path) -> None:
        bands = 1 if len(shape) == 2 else shape[2]
        extra = {"photometric": "RGB", "alpha": "UNSPECIFIED"} if bands > 3 else {}
        with rasterio.open(root / relative, "w", driver="GTiff", height=shape[0], width=shape[1],
                           count=bands, dtype=np.dtype(dtype).name, **extra) as raster:
            raster.write(np.full((bands, *shape[:2]), 100, dtype))
    return damage


def write_mask(relative: str, mask: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        path = root / relative
        assert cv2.imwrite(str(path), mask(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)))
    return damage


def odd_values(mask: np.ndarray) -> np.ndarray:
    """0/255 -> 0/100/200/255: what JPEG-like noise or anti-aliased edges leave in a mask."""
    odd = mask.copy()
    odd[:, ::3][odd[:, ::3] == 0] = 100
    odd[::3][odd[::3] == 255] = 200
    return odd


def raw_spacenet_aoi(w: Workspace) -> Path:
    """A raw AOI folder with two bad tiles: a truncated 16-bit TIFF and an invalid GeoJSON."""
    src = w.tmp / "AOI_2_Vegas_Roads_Train"
    images, labels = src / "RGB-PanSharpen", src / "geojson_roads"
    images.mkdir(parents=True)
    labels.mkdir()
    for number in (1, 2):
        image = images / f"RGB-PanSharpen_AOI_2_Vegas_img{number}.tif"
        with rasterio.open(image, "w", driver="GTiff", height=64, width=64, count=3,
                           dtype="uint16", crs="EPSG:4326",
                           transform=rasterio.Affine(2.7e-6, 0, -115.3, 0, -2.7e-6, 36.2)) as raster:
            raster.write(np.full((3, 64, 64), 900, np.uint16))
        (labels / f"SN3_roads_train_AOI_2_Vegas_geojson_roads_img{number}.geojson").write_text(
            json.dumps({"type": "FeatureCollection", "features": []}))
    cut_in_half("RGB-PanSharpen_AOI_2_Vegas_img1.tif")(images)
    (labels / "SN3_roads_train_AOI_2_Vegas_geojson_roads_img2.geojson").write_text('{"type": "Feat')
    return src


class Case(NamedTuple):
    id: str
    command: str
    build: Callable[[Workspace], list]
    code: int
    message: tuple[str, ...]
    before_training: bool = True


CASES = [
    # Bad configuration: one line naming the key or path, before any training starts.
    Case("unknown type", "train.py", lambda w: ["-c", w.config({"arch.type": "HourglassNet9"})],
         2, ("arch.type", "HourglassNet9")),
    Case("missing section", "train.py", lambda w: ["-c", w.config({"optimizer": DROP})],
         2, ("optimizer.type", "missing")),
    Case("missing key", "train.py", lambda w: ["-c", w.config({"trainer.epochs": DROP})],
         2, ("trainer.epochs", "missing")),
    Case("wrong type in file", "train.py", lambda w: ["-c", w.config({"trainer.epochs": "ten"})],
         2, ("trainer.epochs", "'ten'")),
    Case("wrong type of an argument", "train.py",
         lambda w: ["-c", w.config({"arch.args.num_feats": "16"})], 2, ("arch.args.num_feats", "'16'")),
    Case("wrong type by --set", "train.py",
         lambda w: ["-c", w.config(), "--set", "trainer.save_period=often"],
         2, ("trainer.save_period", "'often'")),
    Case("zero period", "train.py", lambda w: ["-c", w.config({"trainer.val_period": 0})],
         2, ("trainer.val_period", ">= 1")),
    Case("unknown --set key", "train.py", lambda w: ["-c", w.config(), "--set", "trainer.epoch=3"],
         2, ("unknown config key 'trainer.epoch'", "epochs")),
    Case("monitor of a metric never logged", "train.py",
         lambda w: ["-c", w.config({"trainer.monitor": "max val/accuracy"})],
         2, ("trainer.monitor", "val/accuracy")),
    Case("config not JSON", "train.py",
         lambda w: ["-c", w.regular_file()], 2, ("a-file", "not valid JSON")),
    Case("data folder missing", "train.py",
         lambda w: ["-c", w.config({"data_loader.args.data_dir": str(w.tmp / "nowhere")})],
         2, ("data_loader.args.data_dir", "nowhere")),
    Case("save_dir under a file", "train.py",
         lambda w: ["-c", w.config({"trainer.save_dir": str(w.regular_file() / "saved")})],
         2, ("trainer.save_dir", "a-file")),
    Case("save_dir read-only", "train.py",
         lambda w: ["-c", w.config({"trainer.save_dir": str(w.read_only_folder() / "saved")})],
         2, ("trainer.save_dir", "read-only")),
    Case("test --out under a file", "test.py",
         lambda w: ["-r", w.trained / "model_best.pth", "--out", w.regular_file() / "out"],
         2, ("--out", "a-file")),
    Case("test --out read-only", "test.py",
         lambda w: ["-r", w.trained / "model_best.pth", "--out", w.read_only_folder() / "out"],
         2, ("--out", "read-only")),
    # Untrusted checkpoints: pickled objects are refused before anything in them runs.
    Case("crafted pickle, train -r", "train.py", lambda w: ["-r", crafted_checkpoint(w, False)],
         2, ("crafted.pkl", "refused")),
    Case("crafted torch.save, train -r -c", "train.py",
         lambda w: ["-r", crafted_checkpoint(w, True), "-c", w.config()], 2, ("crafted.pth", "refused")),
    Case("crafted torch.save, test -r", "test.py",
         lambda w: ["-r", crafted_checkpoint(w, True), "-c", w.config()],
         2, ("crafted.pth", "refused", "io.open")),
    Case("truncated checkpoint", "test.py", lambda w: ["-r", truncated_checkpoint(w), "-c", w.config()],
         2, ("truncated.pth", "cannot be read")),
    Case("checkpoint of junk bytes", "test.py",
         lambda w: ["-r", junk_checkpoint(w)],
         2, ("junk.pth", "cannot be read")),
    Case("checkpoint missing", "test.py", lambda w: ["-r", w.tmp / "none.pth"],
         2, ("none.pth", "does not exist")),
    Case("more stacks than the checkpoint", "test.py",
         lambda w: ["-r", w.trained / "model_best.pth", "-c", w.config({"arch.args.num_stacks": 3})],
         2, ("model_best.pth", "missing keys: stacks.2.")),
    Case("other width than the checkpoint", "test.py",
         lambda w: ["-r", w.trained / "model_best.pth", "-c", w.config({"arch.args.num_feats": 32})],
         2, ("model_best.pth", "keys of another shape")),
    Case("fewer stacks than the checkpoint, resume", "train.py",
         lambda w: ["-r", w.trained / "checkpoint-epoch1.pth", "-c",
                    w.config({"arch.args.num_stacks": 1})],
         2, ("checkpoint-epoch1.pth", "unexpected keys: stacks.1.")),
    # Bad data: the file is named; header checks stop the run before training.
    Case("unreadable image", "train.py", lambda w: w.train_on(overwrite(TRAIN_IMAGE, b"not a TIFF")),
         2, (TRAIN_IMAGE, "unreadable")),
    Case("truncated image", "train.py", lambda w: w.train_on(cut_in_half(TRAIN_IMAGE)),
         2, (TRAIN_IMAGE, "truncated")),
    Case("truncated mask", "train.py", lambda w: w.train_on(cut_in_half(TRAIN_MASK)),
         2, (TRAIN_MASK, "truncated")),
    Case("mask of another size", "train.py",
         lambda w: w.train_on(write_mask(TRAIN_MASK, lambda mask: mask[:64, :96])),
         2, (TRAIN_MASK, "64x96", "128x128")),
    Case("image without mask", "train.py", lambda w: w.train_on(remove(TRAIN_MASK)),
         2, (TRAIN_IMAGE, "without a mask")),
    Case("mask without image", "train.py", lambda w: w.train_on(remove(TRAIN_IMAGE)),
         2, (TRAIN_MASK, "without an image")),
    Case("5-band image", "train.py",
         lambda w: w.train_on(write_tiff(TRAIN_IMAGE, (128, 128, 5), np.uint8)), 2, (TRAIN_IMAGE, "found 5")),
    Case("4-band image", "train.py",
         lambda w: w.train_on(write_tiff(TRAIN_IMAGE, (128, 128, 4), np.uint8)), 2, (TRAIN_IMAGE, "found 4")),
    Case("band that does not exist", "train.py",
         lambda w: ["-c", w.config({"data_loader.args.bands": [7, 2, 1]})],
         2, ("img1.tif", "selects band 7")),
    Case("no-data color of two values", "train.py",
         lambda w: ["-c", w.config({"data_loader.args.nodata_color": [255, 255]})],
         2, ("data_loader.args.nodata_color", "expected 3")),
    Case("empty split folder", "train.py", lambda w: w.train_on(empty_folder("train/images")),
         2, ("train/images", "no images")),
    Case("validation split missing", "train.py", lambda w: w.train_on(remove("val")),
         2, ("val/images", "not found")),
    Case("odd mask values", "train.py", lambda w: w.train_on(write_mask(TRAIN_MASK, odd_values)),
         0, (TRAIN_MASK, "binarised"), before_training=False),
    Case("invalid GeoJSON", "test.py", lambda w: w.test_on(overwrite(TEST_GEOJSON, b'{"type": "Fea')),
         2, (TEST_GEOJSON, "invalid GeoJSON")),
    Case("split missing", "test.py", lambda w: w.test_on(lambda root: None, "--split", "holdout"),
         2, ("holdout/images", "not found")),
    Case("unreadable image to predict", "test.py",
         lambda w: w.test_on(overwrite("test/images/AOI_2_Vegas_img4.tif", b"\0" * 64),
                             "--images", w.tmp / "data" / "test" / "images"),
         2, ("test/images/AOI_2_Vegas_img4.tif", "unreadable")),
    Case("raw folder missing", "tools.spacenet",
         lambda w: ["--src", w.tmp / "nowhere", "--dst", w.tmp / "prepared"], 2, ("nowhere", "not found")),
    Case("raw tiles damaged", "tools.spacenet",
         lambda w: ["--src", raw_spacenet_aoi(w), "--dst", w.tmp / "prepared", "--split", "train"],
         2, ("AOI_2_Vegas_Roads_Train", "every tile was skipped")),
    # A non-finite loss names where it happened.
    Case("loss overflows", "train.py", lambda w: ["-c", w.config({"optimizer.args.lr": 1e30})],
         2, ("not finite", "at epoch 1, batch", "no checkpoint was saved"), before_training=False),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id.replace(" ", "-") for case in CASES])
def test_bad_input_is_reported_in_one_line_naming_the_culprit(case: Case, workspace: Workspace):
    outcome = run_main(case.command, *case.build(workspace))
    assert "Traceback" not in outcome.stderr, outcome.stderr
    assert outcome.code == case.code, outcome.stderr
    errors = [line for line in outcome.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == (1 if case.code else 0), outcome.stderr
    reported = errors[0] if errors else outcome.stderr
    for text in case.message:
        assert text in reported, outcome.stderr
    if case.before_training:
        assert "epoch 1/" not in outcome.stderr
    assert not workspace.marker.exists(), "a checkpoint ran code while it was loaded"


def test_resume_gives_the_weights_of_an_uninterrupted_run(trained, tmp_path):
    """Epochs 1 + 2 in one run and epoch 1, then a resumed epoch 2: bit-identical weights and
    optimizer state (deterministic CPU run; crops and order are seeded by epoch, RNGs restored)."""
    outcome = run_main("train.py", "-r", trained / "checkpoint-epoch1.pth",
                       "--set", f"trainer.save_dir={tmp_path}")
    assert outcome.code == 0, outcome.stderr
    assert "resumed from" in outcome.stderr
    straight = torch.load(trained / "checkpoint-epoch2.pth", weights_only=True)
    resumed = torch.load(run_folder(tmp_path) / "checkpoint-epoch2.pth", weights_only=True)
    assert straight["state_dict"].keys() == resumed["state_dict"].keys()
    for key, weights in straight["state_dict"].items():
        assert torch.equal(weights, resumed["state_dict"][key]), key
    for index, state in straight["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(value, resumed["optimizer"]["state"][index][name]), (index, name)
    assert straight["lr_scheduler"] == resumed["lr_scheduler"]
    assert straight["monitor_best"] == resumed["monitor_best"]


@pytest.fixture
def loss_not_finite_at_call(monkeypatch):
    """Make the training loss NaN at the n-th call of JointLoss (1-based), once."""
    calls = []
    original = module_loss.JointLoss.__call__

    def patch(n: int) -> None:
        def call(self, outputs, batch):
            terms = original(self, outputs, batch)
            calls.append(1)
            if len(calls) == n:
                terms = {**terms, "total": terms["total"] * float("nan")}
            return terms
        monkeypatch.setattr(module_loss.JointLoss, "__call__", call)
    return patch


def test_non_finite_loss_stops_naming_epoch_batch_and_last_good_checkpoint(
        tiny_dataset, tmp_path, loss_not_finite_at_call):
    # 2 tiles x 2 crops in batches of 2: call 3 is the first batch of epoch 2.
    loss_not_finite_at_call(3)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(tiny_config(tiny_dataset, tmp_path)))
    outcome = run_main("train.py", "-c", path)
    assert outcome.code == 2 and "Traceback" not in outcome.stderr, outcome.stderr
    # Epoch 1 is saved as checkpoint-epoch1.pth and, being the best so far, as model_best.pth.
    found = re.search(r"at epoch 2, batch 0; training stopped, the last good checkpoint is (\S+);",
                      outcome.stderr)
    assert found, outcome.stderr
    last_good = Path(found.group(1))
    assert last_good.parent == run_folder(tmp_path)
    assert not (run_folder(tmp_path) / "checkpoint-epoch2.pth").exists()
    state = torch.load(last_good, weights_only=True)
    assert state["epoch"] == 1
    assert all(torch.isfinite(value).all() for value in state["state_dict"].values())


def test_non_finite_loss_batch_is_skipped_and_counted_when_configured(
        tiny_dataset, tmp_path, loss_not_finite_at_call):
    loss_not_finite_at_call(3)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(tiny_config(tiny_dataset, tmp_path, skip_nonfinite_loss=True)))
    outcome = run_main("train.py", "-c", path)
    assert outcome.code == 0, outcome.stderr
    assert "non-finite loss at epoch 2, batch 0: batch skipped" in outcome.stderr
    assert "train/skipped_batches 1.0000" in outcome.stderr
    state = torch.load(run_folder(tmp_path) / "checkpoint-epoch2.pth", weights_only=True)
    assert all(torch.isfinite(value).all() for value in state["state_dict"].values())


@pytest.mark.parametrize("signum, num_workers", [(signal.SIGTERM, 1), (signal.SIGINT, 0)],
                         ids=["SIGTERM-with-a-worker", "SIGINT"])
def test_signal_saves_a_resumable_checkpoint_and_the_run_resumes(signum, num_workers, tiny_dataset,
                                                                 tmp_path):
    config = tiny_config(tiny_dataset, tmp_path / "saved", epochs=50)
    config["data_loader"]["args"]["num_workers"] = num_workers
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    log = tmp_path / "stderr.txt"
    environment = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    with open(log, "w") as stderr:
        # A session of its own: the signal goes to the whole group, workers included, as Ctrl-C does.
        process = subprocess.Popen([sys.executable, "train.py", "-c", str(path)], cwd=REPO,
                                   stdout=subprocess.DEVNULL, stderr=stderr, env=environment,
                                   start_new_session=True)
        try:
            deadline = time.monotonic() + 240
            while not list((tmp_path / "saved").glob("models/*/*/checkpoint-epoch1.pth")):
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "no checkpoint after 240 s"
                time.sleep(0.05)
            os.killpg(process.pid, signum)
            code = process.wait(timeout=120)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
    message = log.read_text()
    folder = run_folder(tmp_path / "saved")
    interrupted = folder / "checkpoint-interrupted.pth"
    assert code == 2, message
    assert "Traceback" not in message
    assert f"resume with: python train.py -r {interrupted}" in message
    assert not list(folder.glob(".*.tmp")), "a temporary checkpoint file was left behind"
    state = torch.load(interrupted, weights_only=True)
    next_epoch = state["epoch"] + 1
    # No worker here: forking this multi-threaded pytest process can deadlock the child.
    outcome = run_main("train.py", "-r", interrupted, "--epochs", next_epoch,
                       "--set", "data_loader.args.num_workers=0")
    assert outcome.code == 0, outcome.stderr
    assert f"resumed from {interrupted} at epoch {next_epoch}" in outcome.stderr
    assert (run_folder(tmp_path / "saved") / f"checkpoint-epoch{next_epoch}.pth").is_file()


def test_monitoring_validation_without_a_validation_split_is_refused(tmp_path, tiny_dataset):
    config = tiny_config(tiny_dataset, tmp_path / "saved", valid_split=None)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    result = run_command("train.py", "-c", str(path))
    assert result.returncode == 2
    assert "trainer.monitor names 'val/road_iou', which is never logged" in result.stderr
    assert "Traceback" not in result.stderr


TORCHRUN = ("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2")


def epoch_2_reached_batch(progress_bars: str, batch: int) -> bool:
    """Whether the bars `train.py` printed show epoch 2 past `batch` and not yet at its end."""
    counts = re.findall(r"epoch 2/3:[^\r\n]*?(\d+)/(\d+) \[", progress_bars)
    return any(batch <= int(done) < int(total) for done, total in counts)


@pytest.mark.slow
@pytest.mark.parametrize("num_workers, launcher", [(0, ()), (2, ()), (0, TORCHRUN)],
                         ids=["0-workers", "2-workers", "torchrun-2-processes"])
def test_a_run_interrupted_mid_epoch_resumes_to_the_uninterrupted_weights(
        num_workers, launcher, tiny_dataset, tmp_path):
    """SIGTERM at some batch of epoch 2, then `train.py -r checkpoint-interrupted.pth`: the last
    checkpoint equals, tensor for tensor, that of a run never interrupted (one process, or two
    under torchrun)."""
    config = tiny_config(tiny_dataset, tmp_path / "straight", epochs=3, save_period=3)
    config["data_loader"]["args"].update(num_workers=num_workers, crops_per_tile=12)
    config["trainer"]["valid_split"] = None
    config["trainer"]["monitor"] = "off"
    straight = tmp_path / "straight.json"
    straight.write_text(json.dumps(config))
    assert run_command(*launcher, "train.py", "-c", str(straight)).returncode == 0
    config["trainer"]["save_dir"] = str(tmp_path / "interrupted")
    config["trainer"]["save_period"] = 1
    interrupted_config = tmp_path / "interrupted.json"
    interrupted_config.write_text(json.dumps(config))
    # The progress bar (printed at every batch) tells when epoch 2 is under way: a fixed sleep
    # after checkpoint-epoch1 lands anywhere, even after the last epoch, on a fast machine.
    environment = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
                   "TQDM_MININTERVAL": "0"}
    log = tmp_path / "stderr.txt"
    with open(log, "w") as stderr:
        process = subprocess.Popen([sys.executable, *launcher, "train.py", "-c",
                                    str(interrupted_config)],
                                   cwd=REPO, stdout=subprocess.DEVNULL, stderr=stderr,
                                   env=environment, start_new_session=True)
        try:
            deadline = time.monotonic() + 240
            while not epoch_2_reached_batch(log.read_text(errors="replace"), 2):
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "not at batch 2 of epoch 2 after 240 s"
                time.sleep(0.01)
            os.killpg(process.pid, signal.SIGTERM)
            code = process.wait(timeout=120)
            assert code == 2 or (launcher and code != 0), log.read_text()
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
    (checkpoint,) = (tmp_path / "interrupted").glob("models/*/*/checkpoint-interrupted.pth")
    progress = torch.load(checkpoint, weights_only=True)["progress"]
    assert progress is not None and progress["epoch"] == 2 and progress["batch"] >= 2, progress
    resumed = run_command(*launcher, "train.py", "-r", str(checkpoint))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    expected = torch.load(run_folder(tmp_path / "straight") / "checkpoint-epoch3.pth",
                          weights_only=True)
    final = sorted((tmp_path / "interrupted").glob("models/*/*/checkpoint-epoch3.pth"))[-1]
    got = torch.load(final, weights_only=True)
    different = [key for key in expected["state_dict"]
                 if not torch.equal(expected["state_dict"][key], got["state_dict"][key])]
    assert different == [], f"{len(different)} tensors differ, e.g. {different[:3]}"
    assert got["log"]["train/loss"] == pytest.approx(expected["log"]["train/loss"], rel=1e-6)
