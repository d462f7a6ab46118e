"""Connectivity labels per mask file, derived once and kept in memory and on disk."""
import hashlib
import os
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from roads.labels import LabelParams, node_disks, render_labels
from utils.errors import DataError


class LabelCache:
    """Connectivity labels per mask file: node disks cached in memory and, if `cache_dir` is
    given, in `<cache_dir>/<key>.npz`, where the key hashes the file's path, mtime and size and
    the label parameters, so that an edited mask or changed parameters derive anew. Files are
    written to a temporary name and renamed, so parallel workers never read half a file."""

    FORMAT = "node-disks-v1"

    def __init__(self, params: LabelParams, cache_dir: Path | None = None) -> None:
        self.params = params
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._disks: dict[str, np.ndarray] = {}

    def labels(self, mask_path: Path, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(full, quarter) labels of `mask`, the content of `mask_path` (see `render_labels`)."""
        key = self._key(Path(mask_path))
        disks = self._disks.get(key)
        if disks is None:
            disks = self._load(key)
            if disks is None:
                disks = node_disks(mask, self.params)
                self._store(key, disks)
            self._disks[key] = disks
        return render_labels(mask, disks, self.params)

    def precompute(self, mask_path: Path, read_mask: Callable[[], np.ndarray]) -> bool:
        """Derive and store the labels of `mask_path` unless the disk cache holds them already
        (`read_mask()` returns its content, read only when needed). True if they were derived."""
        key = self._key(Path(mask_path))
        if self._load(key) is not None:
            return False
        self._store(key, node_disks(read_mask(), self.params))
        return True

    def _key(self, mask_path: Path) -> str:
        try:
            stat = mask_path.stat()
        except OSError as error:
            raise DataError(f"{mask_path}: cannot read file ({error.strerror})") from None
        text = (f"{self.FORMAT}|{mask_path.resolve()}|{stat.st_mtime_ns}|{stat.st_size}"
                f"|{self.params!r}")
        return hashlib.sha1(text.encode()).hexdigest()

    def _load(self, key: str) -> np.ndarray | None:
        if self.cache_dir is None:
            return None
        try:
            with np.load(self.cache_dir / f"{key}.npz") as archive:
                return archive["disks"]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            # A damaged cache file (disk full, foreign file): derive anew and overwrite it.
            return None

    def _store(self, key: str, disks: np.ndarray) -> None:
        if self.cache_dir is None:
            return
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.cache_dir, suffix=".tmp")
        except OSError as error:
            # A read-only dataset still trains: the labels stay in this process's memory cache.
            warnings.warn(f"{self.cache_dir}: label cache not writable ({error.strerror}); set "
                          "data_loader.args.label_cache_dir to keep labels between runs",
                          stacklevel=2)
            self.cache_dir = None
            return
        try:
            with os.fdopen(handle, "wb") as file:
                np.savez(file, disks=disks)
            os.replace(temporary, self.cache_dir / f"{key}.npz")
        except BaseException:
            os.unlink(temporary)
            raise
