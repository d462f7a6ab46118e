"""Checkpoint files: written atomically, read without running pickled code."""
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

from utils.errors import UserError


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write `state` to `path` through a temporary file and a rename, so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(state, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with `weights_only=True`: tensors and plain containers only.

    A file that carries other pickled objects is refused before anything in it runs.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
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
