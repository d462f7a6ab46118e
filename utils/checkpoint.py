"""Checkpoint files: written atomically and durably, read without running pickled code.

Every file goes to a temporary name beside its target, is fsynced, renamed over the target and the
folder is fsynced: a crash, a kill or a full disk leaves either the previous file or the new one,
never half of one, and a failed write is reported as one line naming the file.
"""
import errno
import json
import logging
import os
import pickle
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import torch

from utils.errors import OutputError, UserError

logger = logging.getLogger(__name__)


def process_umask() -> int:
    """This process's umask, read without setting it (os.umask would change it for every thread)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


@contextmanager
def atomic_write(path: Path, what: str = "file") -> Iterator[IO[bytes]]:
    """Open a temporary binary file beside `path` for writing; on leaving the block without an
    error, fsync it, rename it over `path` and fsync the folder.

    On any error the temporary file is removed and `path` is untouched. An `OSError` (no space,
    file too large, permission) becomes `OutputError` naming `path` and `what` it is ("checkpoint").
    """
    path = Path(path)
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                             dir=path.parent)
        os.chmod(temporary, 0o666 & ~process_umask())  # mkstemp's 0600 would hide it from the group
        with os.fdopen(handle, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
        temporary = None
        fsync_folder(path.parent)
    except OSError as error:
        raise write_error(path, what, error) from None
    finally:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)


def write_json(content: dict | list, path: Path) -> None:
    """`content` as indented JSON, written atomically (a run killed while it writes leaves the
    file whole or absent, never empty); a value JSON cannot hold (a constructor's default may be
    any object) is written as its text."""
    text = json.dumps(content, indent=2, default=str) + "\n"
    with atomic_write(path, path.name) as file:
        file.write(text.encode("utf-8"))


def write_error(path: Path, what: str, error: OSError) -> OutputError:
    """One line naming the file and the reason, e.g. `cannot write checkpoint a.pth: No space left
    on device (ENOSPC); the previous a.pth, if any, is unchanged`."""
    code = errno.errorcode.get(error.errno, "") if error.errno is not None else ""
    reason = (error.strerror or type(error).__name__) + (f" ({code})" if code else "")
    return OutputError(f"cannot write {what} {path}: {reason}; the previous {path.name}, if any, "
                       "is unchanged")


def fsync_folder(folder: Path) -> None:
    """Make a rename inside `folder` durable. Some file systems cannot fsync a folder: skipped."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(handle)


class _RecordingWriter:
    """A file wrapper for `torch.save`, whose own error (a RuntimeError from its C++ writer)
    loses the errno of a failed write: the original `OSError` is kept here."""

    def __init__(self, file: IO[bytes]) -> None:
        self.file = file
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            return self.file.write(data)
        except OSError as error:
            self.error = error
            raise

    def flush(self) -> None:
        self.file.flush()


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write `state` to `path` atomically (see `atomic_write`); a failed write raises
    `OutputError` naming `path` and leaves the previous file of that name intact."""
    with atomic_write(path, "checkpoint") as file:
        writer = _RecordingWriter(file)
        try:
            torch.save(state, writer)
        except RuntimeError:
            if writer.error is not None:
                raise writer.error from None
            raise


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu",
                    mmap: bool = False) -> dict[str, Any]:
    """Load a checkpoint with `weights_only=True`: tensors and plain containers only.

    A file that carries other pickled objects is refused before anything in it runs. With `mmap`,
    tensors are mapped rather than read (a cheap check of a file's structure and metadata).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        reason = refusal_reason(error)
        if reason is None:
            raise UserError(f"checkpoint {path} cannot be read: {first_line(error)}") from None
        raise UserError(
            f"checkpoint {path} was refused: it holds objects other than tensors and plain data "
            f"and is not loaded for safety ({reason})"
        ) from None
    except Exception as error:  # a damaged file raises RuntimeError, EOFError, struct.error, ...
        raise UserError(f"checkpoint {path} cannot be read: {first_line(error)}") from None
    if not isinstance(state, dict) or "state_dict" not in state:
        raise UserError(f"checkpoint {path} is not a checkpoint of this repo (no 'state_dict')")
    weights = state["state_dict"]
    if not isinstance(weights, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()):
        raise UserError(f"checkpoint {path} is damaged: 'state_dict' is not a mapping of names to "
                        "tensors")
    for key, kinds in (("epoch", (int,)), ("config", (dict,)), ("optimizer", (dict,))):
        value = state.get(key)
        if value is not None and (not isinstance(value, kinds) or isinstance(value, bool)):
            raise UserError(f"checkpoint {path} is damaged: '{key}' holds a "
                            f"{type(value).__name__}")
    return state


def refusal_reason(error: pickle.UnpicklingError) -> str | None:
    """What torch's weights-only unpickler refused (e.g. `Unsupported global: GLOBAL io.open`), or
    None when the error is a damaged file rather than a refused object."""
    for line in str(error).splitlines():
        if "Unsupported" in line:
            return line.split("error:")[-1].split(". Please")[0].strip()
    return None


def first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def load_model_state(model: torch.nn.Module, state: dict[str, Any], path: Path) -> None:
    """Load a checkpoint's weights, naming missing, unexpected and reshaped keys on a mismatch."""
    expected = model.state_dict()
    given = state["state_dict"]
    problems = []
    missing = [key for key in expected if key not in given]
    unexpected = [key for key in given if key not in expected]
    reshaped = [key for key in given if key in expected and given[key].shape != expected[key].shape]
    for label, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                        ("keys of another shape", reshaped)):
        if keys:
            shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise UserError(f"checkpoint {path} (arch {state.get('arch', '?')}) does not fit the "
                        f"configured network: {'; '.join(problems)}")
    model.load_state_dict(given)


def newest_valid_checkpoint(run_folder: Path) -> Path:
    """The checkpoint of `run_folder` that is furthest along: the highest epoch, then the newest
    file (an interrupted checkpoint is saved after the epoch checkpoint it continues).

    Files that do not load (truncated, damaged, foreign) are skipped with a warning naming them;
    `UserError` when none loads.
    """
    folder = Path(run_folder)
    if not folder.is_dir():
        raise UserError(f"run folder {folder} does not exist")
    candidates = [p for p in folder.glob("*.pth") if not p.name.startswith(".") and p.is_file()]
    ranked: list[tuple[int, int, Path]] = []
    problems = []
    for path in candidates:
        try:
            state = load_checkpoint(path, mmap=True)
            epoch = state.get("epoch")
            del state
            if not isinstance(epoch, int) or isinstance(epoch, bool):
                raise UserError(f"checkpoint {path} has no epoch number")
            ranked.append((epoch, path.stat().st_mtime_ns, path))
        except (UserError, OSError) as error:
            logger.warning("skipped %s", error)
            problems.append(path.name)
    if not ranked:
        tried = f" ({len(problems)} unreadable: {', '.join(sorted(problems))})" if problems else ""
        raise UserError(f"run folder {folder} holds no readable checkpoint (*.pth){tried}")
    return max(ranked)[2]
