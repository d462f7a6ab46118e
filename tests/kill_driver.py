"""Hard-kill trials of `train.py`: `python tests/kill_driver.py CONFIG OUT_JSON TRIALS SEED`.

Imports what train.py needs once, then runs train.py in forked children (as `__main__`, through its
command line) and SIGKILLs most of them at random moments: the first run is left to finish (the
reference, and the length of a run), then each trial either starts afresh or resumes from the
newest valid checkpoint of an earlier run folder, and the last run resumes the newest killed run
and must finish. Forking from a process that has imported torch and compiled the skeleton
graph's numba functions, but never run a torch operator, keeps a trial at a fraction of a second instead of
seconds of imports and compilation. Writes a JSON report of every run.
"""
import itertools
import json
import os
import random
import runpy
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402  (all imported before forking so that each child skips the imports)
import torch  # noqa: E402
import torch._inductor  # noqa: E402, F401  (torch.use_deterministic_algorithms imports it: 3 s)

import data_loader.data_loaders  # noqa: E402, F401
import model.network  # noqa: E402, F401
import trainer  # noqa: E402, F401
from roads.labels import node_disks  # noqa: E402
from tests.conftest import drawn  # noqa: E402
from utils.checkpoint import newest_valid_checkpoint  # noqa: E402
from utils.config import ConfigParser  # noqa: E402, F401


def warm_up() -> None:
    """Compile the skeleton graph's numba functions once here rather than for seconds in every child, with
    OpenCV's thread pool off so that no thread exists in the process that forks."""
    cv2.setNumThreads(0)
    torch.set_num_threads(1)
    node_disks(drawn(((10, 40), (70, 40), 5), ((40, 10), (40, 70), 5), size=(80, 80)) > 0)


class Kill:
    """When to SIGKILL a run: `delay` seconds after its `saves`-th epoch checkpoint appeared (0:
    after the start). Measured from the run's own progress, so a loaded machine moves the moment
    within an epoch rather than past the end of the run."""

    def __init__(self, saves: int, delay: float) -> None:
        self.saves, self.delay = saves, delay


def epoch_checkpoints(runs_root: Path, known: set[Path]) -> int:
    """The number of epoch checkpoints in the run folder that is not in `known` (0 if none yet)."""
    for folder in runs_root.glob("*"):
        if folder not in known:
            return len(list(folder.glob("checkpoint-epoch*.pth")))
    return 0


def run_train(argv: list[str], log: Path, runs_root: Path, kill: Kill | None) -> dict:
    """Run `train.py argv` in a forked child, SIGKILLed at the moment `kill` describes."""
    known = set(runs_root.glob("*"))
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            with open(log, "w") as file:
                os.dup2(file.fileno(), 1)
                os.dup2(file.fileno(), 2)
            sys.argv = [str(REPO / "train.py"), *argv]
            runpy.run_path(str(REPO / "train.py"), run_name="__main__")
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    killed, done, status, seen = False, 0, 0, []  # seen: when each new epoch checkpoint appeared
    deadline = None if kill is None or kill.saves else start + kill.delay
    while not done:
        now = time.monotonic()
        saves = epoch_checkpoints(runs_root, known)
        if saves > len(seen):
            seen.extend([now - start] * (saves - len(seen)))
        if kill is not None and deadline is None and saves >= kill.saves:
            deadline = now + kill.delay
        if deadline is not None and now >= deadline:
            os.kill(pid, signal.SIGKILL)
            killed = True
            break
        done, status = os.waitpid(pid, os.WNOHANG)
        time.sleep(0.002)
    if not done:
        _, status = os.waitpid(pid, 0)
    return {"argv": argv, "killed": killed, "kill": vars(kill) if kill else None,
            "returncode": os.waitstatus_to_exitcode(status), "seconds": time.monotonic() - start,
            "saves_seen": seen, "log": str(log)}


def intervals(seen: list[float]) -> list[float]:
    """Epoch lengths from the moments checkpoints appeared (two seen in one poll: no length)."""
    return [b - a for a, b in itertools.pairwise(seen) if b - a > 0.01]


def furthest_epoch(folder: Path) -> int:
    return max((int(p.stem.removeprefix("checkpoint-epoch"))
                for p in folder.glob("checkpoint-epoch*.pth")), default=0)


def main() -> None:
    config_path, out, trials, seed = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(
        sys.argv[4])
    config = json.loads(config_path.read_text())
    epochs = config["trainer"]["epochs"]
    runs_root = Path(config["trainer"]["save_dir"]) / "models" / config["name"]
    cache_dir = Path(config["data_loader"]["args"]["label_cache_dir"])
    warm_up()
    rng = random.Random(seed)
    logs = out.parent / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    runs = [run_train(["-c", str(config_path)], logs / "reference.log", runs_root, None)]
    (reference,) = sorted(runs_root.iterdir())
    # The shortest start (to the first checkpoint) and epoch seen so far: on a shared machine the
    # first run is often the slowest, and a kill planned from it would come after the run ended.
    seen = runs[0]["saves_seen"]
    first_save, epoch_time = seen[0], min(intervals(seen))
    for trial in range(trials):
        if rng.random() < 0.3:
            shutil.rmtree(cache_dir, ignore_errors=True)  # so that kills also hit cache writes
        unfinished = []
        for folder in sorted(runs_root.iterdir()):
            if folder != reference and 0 < furthest_epoch(folder) < epochs:
                unfinished.append(newest_valid_checkpoint(folder))
        argv, remaining = ["-c", str(config_path)], epochs
        if unfinished and rng.random() < 0.5:
            resume = rng.choice(unfinished)
            argv, remaining = ["-r", str(resume)], epochs - furthest_epoch(resume.parent)
        # After the k-th new checkpoint at least one epoch remains: a delay under the shortest
        # epoch lands in it (in its training, validation or checkpoint writes).
        saves = rng.randrange(remaining)
        kill = Kill(saves, rng.uniform(0.3 * first_save, first_save) if saves == 0
                    else rng.uniform(0.0, 0.9 * epoch_time))
        runs.append(run_train(argv, logs / f"trial{trial}.log", runs_root, kill))
        seen = runs[-1]["saves_seen"]
        if seen and argv[0] == "-c":
            first_save = min(first_save, seen[0])
        epoch_time = min([epoch_time, *intervals(seen)])
    unfinished = sorted((f for f in runs_root.iterdir() if 0 < furthest_epoch(f) < epochs),
                        key=lambda f: f.stat().st_mtime_ns)
    final = newest_valid_checkpoint(unfinished[-1]) if unfinished else None
    before_final = sorted(str(f) for f in runs_root.iterdir())
    if final is not None:
        runs.append(run_train(["-r", str(final)], logs / "final.log", runs_root, None))
    out.write_text(json.dumps({"reference": str(reference), "before_final": before_final,
                               "final_resumed_from": str(final) if final else None,
                               "runs": runs},
                              indent=1))


if __name__ == "__main__":
    main()
