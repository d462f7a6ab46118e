"""Multi-process training with DistributedDataParallel on the CPU (gloo), as torchrun runs it."""
import json

import pytest
import torch

from tests.conftest import run_command, tiny_config


@pytest.mark.slow
def test_torchrun_two_processes_train_one_epoch(tmp_path, tiny_dataset):
    config = tiny_config(tiny_dataset, tmp_path / "saved", epochs=1)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    result = run_command("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                         "train.py", "-c", str(path), timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 process(es)" in result.stderr
    runs = list((tmp_path / "saved" / "models" / "toy-spacenet").iterdir())
    assert len(runs) == 1, "only rank 0 creates a run folder"
    state = torch.load(runs[0] / "checkpoint-epoch1.pth", weights_only=True)
    assert state["epoch"] == 1
    assert not any(key.startswith("module.") for key in state["state_dict"])
    log = (tmp_path / "saved" / "log" / "toy-spacenet" / runs[0].name / "info.log").read_text()
    assert log.count("epoch 1 ") == 1, "one summary line per epoch, from rank 0"


@pytest.mark.slow
def test_torchrun_test_py_splits_tiles_and_writes_what_one_process_writes(tmp_path, tiny_dataset):
    config = tiny_config(tiny_dataset, tmp_path / "saved", epochs=1)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert run_command("train.py", "-c", str(path)).returncode == 0
    (checkpoint,) = (tmp_path / "saved" / "models" / "toy-spacenet").glob("*/checkpoint-epoch1.pth")
    outputs = {}
    for name, launcher in (("one", []), ("two", ["-m", "torch.distributed.run", "--standalone",
                                                 "--nproc_per_node=2"])):
        out = tmp_path / name
        result = run_command(*launcher, "test.py", "-r", str(checkpoint), "--split", "train",
                             "--out", str(out), timeout=400)
        assert result.returncode == 0, result.stderr[-3000:]
        outputs[name] = out
    for table in ("metrics.json", "per_image.csv", "submission.csv"):
        assert (outputs["one"] / table).read_text() == (outputs["two"] / table).read_text(), table
    metrics = json.loads((outputs["two"] / "metrics.json").read_text())
    assert metrics["n_tiles"] == 2
    assert sorted(p.name for p in (outputs["two"] / "masks").iterdir()) == sorted(
        p.name for p in (outputs["one"] / "masks").iterdir())
