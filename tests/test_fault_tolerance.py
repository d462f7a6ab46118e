"""What survives what: hard kills, full disks, refused writes and damaged label-cache files."""
import errno
import json
import os
import shutil
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from data_loader import label_cache
from data_loader.datasets import RoadDataset
from data_loader.label_cache import LabelCache, read_cache_file
from data_loader.tiles import read_mask
from roads.labels import LabelParams, node_disks
from tests.conftest import REPO, drawn, tiny_config
from tools.toy.generate import generate
from utils import checkpoint
from utils.checkpoint import load_checkpoint, newest_valid_checkpoint, save_checkpoint
from utils.errors import OutputError, UserError

EPOCHS = 4


def tiny_run_config(tmp_path: Path) -> Path:
    """A run of about a second on one CPU: 3 tiles of 64 px, 32 px crops, the narrowest network."""
    data = tmp_path / "data"
    generate(data, seed=3, counts={"train": 2, "val": 1, "test": 0}, size=64)
    config = tiny_config(data, tmp_path / "saved", epochs=EPOCHS, tensorboard=False, amp=False,
                         channels_last=False, image_period=1000)
    config["arch"]["args"].update(num_stacks=1, depth=1, num_blocks=1, num_feats=8)
    config["data_loader"]["args"].update(crop_size=32, crops_per_tile=1, batch_size=2,
                                         label_cache_dir=str(tmp_path / "cache"))
    config["predictor"].update(window=64, margin=8)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


def state(state: dict) -> dict:
    return {"state_dict": {"w": torch.full((4,), float(state["epoch"]))}, **state}


@pytest.mark.slow
def test_hard_kills_never_leave_a_valid_but_wrong_file_and_the_run_resumes(tmp_path):
    """20 SIGKILLs at random moments of fresh and resumed runs: every checkpoint that exists
    loads and equals the uninterrupted run's at its epoch, every label-cache file validates and
    holds the labels of its mask, and resuming the newest checkpoint finishes the run."""
    config_path = tiny_run_config(tmp_path)
    config = json.loads(config_path.read_text())
    report_path = tmp_path / "report.json"
    environment = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(REPO / "tests" / "kill_driver.py"), str(config_path),
                    str(report_path), "20", "7"], check=True, env=environment, timeout=300)
    report = json.loads(report_path.read_text())
    runs = report["runs"]
    assert runs[0]["returncode"] == 0, Path(runs[0]["log"]).read_text()[-2000:]
    assert sum(run["killed"] for run in runs[1:-1]) >= 15, runs
    for run in runs[1:-1]:  # a trial that was not killed in time finished normally
        assert run["killed"] or run["returncode"] == 0, Path(run["log"]).read_text()[-2000:]

    reference_folder = Path(report["reference"])
    reference = {epoch: load_checkpoint(reference_folder / f"checkpoint-epoch{epoch}.pth")
                 for epoch in range(1, EPOCHS + 1)}
    runs_root = reference_folder.parent
    checked = 0
    for folder in runs_root.iterdir():
        for path in folder.glob("*.pth"):
            loaded = load_checkpoint(path)
            if path.name.startswith("checkpoint-epoch"):
                assert loaded["epoch"] == int(path.stem.removeprefix("checkpoint-epoch"))
            expected = reference[loaded["epoch"]]["state_dict"]
            for key, tensor in loaded["state_dict"].items():
                assert torch.equal(tensor, expected[key]), (path, key)
            checked += 1
        if any(folder.glob("*.pth")):
            newest = newest_valid_checkpoint(folder)
            highest = max(load_checkpoint(p)["epoch"] for p in folder.glob("*.pth"))
            assert load_checkpoint(newest)["epoch"] == highest
        for path in folder.glob("config.json"):
            assert json.loads(path.read_text())["name"] == config["name"]
    assert checked > 2 * EPOCHS

    args = config["data_loader"]["args"]
    expected_disks = {}
    for split in ("train", "val"):
        # The tile's label parameters as the loader makes them (ground units in its pixels).
        dataset = RoadDataset(args["data_dir"], split, training=False, labels=args.get("labels"),
                              graph=config.get("graph"), label_cache_dir=tmp_path / "unused")
        for tile in dataset.tiles:
            cache = LabelCache(dataset.label_cache(tile).params, None)
            expected_disks[cache._key(tile.mask_path, None)] = node_disks(
                read_mask(tile.mask_path), cache.params)
    cache_files = list(Path(config["data_loader"]["args"]["label_cache_dir"]).glob("*.npz"))
    for path in cache_files:
        np.testing.assert_array_equal(read_cache_file(path, path.stem), expected_disks[path.stem])

    assert report["final_resumed_from"] is not None
    final = runs[-1]
    assert final["returncode"] == 0, Path(final["log"]).read_text()[-2000:]
    (resumed_folder,) = {str(f) for f in runs_root.iterdir()} - set(report["before_final"])
    last = load_checkpoint(Path(resumed_folder) / f"checkpoint-epoch{EPOCHS}.pth")
    for key, tensor in last["state_dict"].items():
        assert torch.equal(tensor, reference[EPOCHS]["state_dict"][key]), key


FILE_SIZE_LIMIT = """
import resource, signal, sys, torch
from utils.checkpoint import save_checkpoint
from utils.errors import UserError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the writer at the limit
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
try:
    save_checkpoint({"state_dict": {"w": torch.zeros(100_000)}, "epoch": 2}, sys.argv[1])
except UserError as error:
    print(error)
"""


def test_checkpoint_past_the_file_size_limit_fails_in_one_line_and_keeps_the_previous(tmp_path):
    path = tmp_path / "model_best.pth"
    save_checkpoint(state({"epoch": 1}), path)
    before = path.read_bytes()
    result = subprocess.run([sys.executable, "-c", FILE_SIZE_LIMIT, str(path)], cwd=REPO,
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    message = result.stdout.strip()
    assert message.splitlines() == [message]
    assert message.startswith(f"cannot write checkpoint {path}: File too large (EFBIG)")
    assert path.read_bytes() == before and load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model_best.pth"]


def limit_file_size(limit: int):
    def apply() -> None:
        import resource
        import signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # kept across exec: writes raise EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_train_py_on_a_full_disk_stops_with_one_line_naming_the_checkpoint(tmp_path):
    """A limit above the logs and label-cache files but below one checkpoint (3 MB)."""
    config_path = tiny_run_config(tmp_path)
    environment = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
                   "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run([sys.executable, "train.py", "-c", str(config_path)], cwd=REPO,
                            capture_output=True, text=True, timeout=300, env=environment,
                            preexec_fn=limit_file_size(1_000_000))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot write checkpoint ") and "(EFBIG)" in last
    (folder,) = (tmp_path / "saved" / "models" / "toy-spacenet").iterdir()
    assert f"{folder / 'checkpoint-epoch1.pth'}" in last
    assert not list(folder.glob("*.pth")) and not list(folder.glob(".*.tmp"))


@pytest.mark.parametrize("code, step", [(errno.ENOSPC, "fsync"), (errno.EACCES, "replace"),
                                        (errno.EROFS, "mkstemp")])
def test_a_refused_write_names_the_file_and_keeps_the_previous(tmp_path, monkeypatch, code, step):
    path = tmp_path / "checkpoint-interrupted.pth"
    save_checkpoint(state({"epoch": 1}), path)

    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    target = {"fsync": (checkpoint.os, "fsync"), "replace": (checkpoint.os, "replace"),
              "mkstemp": (checkpoint.tempfile, "mkstemp")}[step]
    monkeypatch.setattr(*target, refuse)
    with pytest.raises(OutputError) as raised:
        save_checkpoint(state({"epoch": 2}), path)
    monkeypatch.undo()
    message = str(raised.value)
    assert message.startswith(f"cannot write checkpoint {path}: {os.strerror(code)} "
                              f"({errno.errorcode[code]})")
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_newest_valid_checkpoint_skips_damaged_files_and_prefers_the_furthest_epoch(tmp_path):
    for epoch in (1, 2, 3):
        save_checkpoint(state({"epoch": epoch}), tmp_path / f"checkpoint-epoch{epoch}.pth")
    save_checkpoint(state({"epoch": 2}), tmp_path / "model_best.pth")
    assert newest_valid_checkpoint(tmp_path) == tmp_path / "checkpoint-epoch3.pth"
    # Saved after the epoch-3 checkpoint, at the same epoch: it holds the later weights.
    save_checkpoint(state({"epoch": 3}), tmp_path / "checkpoint-interrupted.pth")
    os.utime(tmp_path / "checkpoint-epoch3.pth", ns=(0, 0))
    assert newest_valid_checkpoint(tmp_path) == tmp_path / "checkpoint-interrupted.pth"
    # Damage both: a truncated file and one of another kind are skipped.
    whole = (tmp_path / "checkpoint-interrupted.pth").read_bytes()
    (tmp_path / "checkpoint-interrupted.pth").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "checkpoint-epoch3.pth").write_bytes(b"not a checkpoint")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "checkpoint-epoch9.pth")
    (tmp_path / ".checkpoint-epoch4.pth.abc.tmp").write_bytes(whole)  # a killed write
    # Epoch 2 is the furthest left; model_best.pth is its newer file.
    assert newest_valid_checkpoint(tmp_path) == tmp_path / "model_best.pth"


def test_newest_valid_checkpoint_reports_a_folder_without_one(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        newest_valid_checkpoint(tmp_path / "missing")
    (tmp_path / "checkpoint-epoch1.pth").write_bytes(b"\0" * 100)
    with pytest.raises(UserError, match=r"no readable checkpoint .*checkpoint-epoch1\.pth"):
        newest_valid_checkpoint(tmp_path)


def damaged(kind: str, path: Path, other: Path) -> None:
    """Damage the label-cache file `path` in the way `kind` names (`other`: another cache file)."""
    data = path.read_bytes()
    if kind == "truncated":
        path.write_bytes(data[: len(data) * 2 // 3])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "bit flip":
        flipped = bytearray(data)
        start = data.index(b"disks.npy") + 200  # inside the disks' data, past the headers
        flipped[start] ^= 0x10
        path.write_bytes(bytes(flipped))
    elif kind == "foreign":
        shutil.copy(other, path)
    elif kind == "not a cache file":
        np.savez(path, disks=np.zeros((1, 4)))
    elif kind == "edited disks, valid zip":
        with np.load(path) as archive:
            arrays = dict(archive)
        arrays["disks"] = arrays["disks"] + 1.0
        np.savez(path, **arrays)
    elif kind == "huge declared size":
        with zipfile.ZipFile(path) as archive:
            members = {name: archive.read(name) for name in archive.namelist()}
        header = members["disks.npy"]
        members["disks.npy"] = header.replace(b"'shape': (", b"'shape': (99999999999, ", 1)
        with zipfile.ZipFile(path, "w") as archive:
            for name, content in members.items():
                archive.writestr(name, content)


CACHE_DAMAGE = ["truncated", "empty", "bit flip", "foreign", "not a cache file",
                "edited disks, valid zip", "huge declared size"]


@pytest.mark.parametrize("kind", CACHE_DAMAGE)
def test_a_damaged_label_cache_file_is_reported_once_and_derived_anew(tmp_path, monkeypatch, kind):
    masks = {name: tmp_path / f"{name}.png" for name in ("cross", "tee")}
    cv2.imwrite(str(masks["cross"]), drawn(((10, 100), (190, 100), 9), ((100, 10), (100, 190), 9)))
    cv2.imwrite(str(masks["tee"]), drawn(((10, 60), (190, 60), 9), ((100, 60), (100, 190), 9)))
    cache_dir = tmp_path / "cache"
    files = {}
    for name, mask_path in masks.items():
        cache = LabelCache(LabelParams(), cache_dir)
        cache.labels(mask_path, read_mask(mask_path))
        files[name] = cache_dir / f"{cache._key(mask_path, None)}.npz"
    expected = node_disks(read_mask(masks["cross"]))
    damaged(kind, files["cross"], files["tee"])
    derived = []
    original = label_cache.node_disks
    monkeypatch.setattr(label_cache, "node_disks", lambda *a: derived.append(1) or original(*a))
    cache = LabelCache(LabelParams(), cache_dir)
    with pytest.warns(UserWarning) as caught:
        full, _ = cache.labels(masks["cross"], read_mask(masks["cross"]))
        cache._disks.clear()  # read the (now rewritten) file once more: no second report
        cache.labels(masks["cross"], read_mask(masks["cross"]))
    assert len(caught) == 1 and str(files["cross"]) in str(caught[0].message)
    assert "label-cache file" in str(caught[0].message) and derived == [1]
    np.testing.assert_array_equal(read_cache_file(files["cross"], files["cross"].stem), expected)
    assert full.max() > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LabelCache(LabelParams(), cache_dir).labels(masks["cross"], read_mask(masks["cross"]))
    assert derived == [1]


def test_a_full_disk_turns_the_label_cache_off_with_one_warning(tmp_path, monkeypatch):
    mask_path = tmp_path / "mask.png"
    cv2.imwrite(str(mask_path), drawn(((10, 100), (190, 100), 9), ((100, 10), (100, 190), 9)))

    def no_space(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint.os, "fsync", no_space)
    cache = LabelCache(LabelParams(), tmp_path / "cache")
    with pytest.warns(UserWarning, match=r"label cache not writable: cannot write label-cache "
                                         r"file .*\.npz: No space left on device"):
        full, _ = cache.labels(mask_path, read_mask(mask_path))
    assert full.max() > 0 and cache.cache_dir is None
    assert list((tmp_path / "cache").iterdir()) == []



def test_train_py_resumes_a_run_folder_from_its_newest_valid_checkpoint(tmp_path):
    """`train.py -r RUN_FOLDER`: the furthest checkpoint that loads, skipping a damaged newer one."""
    config_path = tiny_run_config(tmp_path)
    environment = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}

    def train(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "train.py", *args], cwd=REPO, capture_output=True,
                              text=True, timeout=300, env=environment)

    first = train("-c", str(config_path), "--epochs", "2")
    assert first.returncode == 0, first.stderr
    (folder,) = (tmp_path / "saved" / "models" / "toy-spacenet").iterdir()
    whole = (folder / "checkpoint-epoch2.pth").read_bytes()
    (folder / "checkpoint-epoch3.pth").write_bytes(whole[: len(whole) // 2])
    resumed = train("-r", str(folder), "--epochs", "3")
    assert resumed.returncode == 0, resumed.stderr
    output = resumed.stdout + resumed.stderr
    assert "Traceback" not in output
    assert f"resumed from {folder / 'checkpoint-epoch2.pth'} at epoch 3" in output
    assert f"skipped checkpoint {folder / 'checkpoint-epoch3.pth'}" in output
    epochs = []
    for path in (tmp_path / "saved").rglob("checkpoint-epoch3.pth"):
        try:
            epochs.append(load_checkpoint(path)["epoch"])
        except UserError:
            continue
    assert epochs == [3]
