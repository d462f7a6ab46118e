"""Connectivity labels per mask file, derived once and kept in memory and on disk."""
import hashlib
import io
import warnings
import zipfile
from pathlib import Path

import numpy as np

from roads.labels import LabelParams, node_disks, render_labels
from utils.checkpoint import atomic_write
from utils.errors import DataError, OutputError

CACHE_MEMBERS = {"disks.npy", "key.npy", "checksum.npy"}


class CacheFileError(Exception):
    """A label-cache file that cannot be trusted; the message says why."""


def disks_checksum(key: str, disks: np.ndarray) -> str:
    """SHA-256 of the key and the disks' dtype, shape and bytes: a cache file's self-check."""
    digest = hashlib.sha256(f"{key}|{disks.dtype.str}|{disks.shape}|".encode())
    digest.update(np.ascontiguousarray(disks).tobytes())
    return digest.hexdigest()


def write_cache_file(path: Path, key: str, disks: np.ndarray) -> None:
    """Write (K, 4) float `disks` with their key and checksum to `path` atomically."""
    buffer = io.BytesIO()
    np.savez(buffer, disks=disks, key=np.array(key), checksum=np.array(disks_checksum(key, disks)))
    with atomic_write(path, "label-cache file") as file:
        file.write(buffer.getvalue())


def read_cache_file(path: Path, key: str) -> np.ndarray:
    """The (K, 4) float disks stored in `path` for `key`.

    Raises FileNotFoundError when there is no file and CacheFileError when it is truncated or
    corrupted (bad zip, CRC or checksum), foreign (another key or format) or not a cache file.
    Memory stays bounded by the file's size whatever sizes a damaged file declares.
    """
    data = Path(path).read_bytes()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = {info.filename: info for info in archive.infolist()}
            if set(infos) != CACHE_MEMBERS:
                raise CacheFileError(f"not a label-cache file (members {sorted(infos)[:5]})")
            arrays = {}
            for name, info in infos.items():
                if info.file_size > len(data) or info.compress_type != zipfile.ZIP_STORED:
                    raise CacheFileError(f"damaged ({name} declares {info.file_size} bytes)")
                arrays[name[:-4]] = npy_array(archive.read(name))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, OSError,
            NotImplementedError) as error:
        raise CacheFileError(f"damaged ({error})") from None
    stored_key, checksum, disks = arrays["key"], arrays["checksum"], arrays["disks"]
    if stored_key.shape != () or stored_key.dtype.kind != "U" or str(stored_key) != key:
        raise CacheFileError("foreign (computed from another mask file or other parameters)")
    if checksum.shape != () or checksum.dtype.kind != "U":
        raise CacheFileError("damaged (no checksum)")
    if disks.ndim != 2 or disks.shape[1] != 4 or disks.dtype != np.float64:
        raise CacheFileError(f"damaged (disks of shape {disks.shape} and type {disks.dtype})")
    if str(checksum) != disks_checksum(key, disks):
        raise CacheFileError("corrupted (checksum mismatch)")
    return disks


def npy_array(data: bytes) -> np.ndarray:
    """The array in .npy bytes, refusing object arrays and a header whose shape does not match the
    data (instead of allocating what a damaged header declares)."""
    buffer = io.BytesIO(data)
    version = np.lib.format.read_magic(buffer)
    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                   else np.lib.format.read_array_header_2_0)
    shape, fortran_order, dtype = read_header(buffer)
    if dtype.hasobject:
        raise ValueError("object array")
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if count < 0 or count * dtype.itemsize != len(data) - buffer.tell():
        raise ValueError(f"header declares {shape} {dtype} for {len(data) - buffer.tell()} bytes")
    array = np.frombuffer(data, dtype=dtype, count=count, offset=buffer.tell())
    return array.reshape(shape, order="F" if fortran_order else "C")


class LabelCache:
    """Connectivity labels per mask file: node disks cached in memory and, if `cache_dir` is
    given, in `<cache_dir>/<key>.npz`, where the key hashes the file's path, mtime and size, the
    label parameters and the validity mask (when some pixel is invalid), so that an edited mask,
    other no-data or changed parameters derive anew.

    Each file carries its key and a checksum of its content, and is written to a temporary name,
    fsynced and renamed: a truncated, corrupted or foreign file is reported once (a warning
    naming it) and derived anew. A folder that cannot be written keeps the labels in memory."""

    FORMAT = "node-disks-v2"

    def __init__(self, params: LabelParams, cache_dir: Path | None = None) -> None:
        self.params = params
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._disks: dict[str, np.ndarray] = {}
        self._reported: set[Path] = set()

    def labels(self, mask_path: Path, mask: np.ndarray,
               valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(full, quarter) labels of `mask`, the content of `mask_path`, with the tile's (H, W)
        bool validity `valid` (default all valid; see `render_labels`)."""
        if valid is not None and np.all(valid):
            valid = None
        key = self._key(Path(mask_path), valid)
        disks = self._disks.get(key)
        if disks is None:
            disks = self._load(key)
            if disks is None:
                disks = node_disks(mask, self.params, valid)
                self._store(key, disks)
            self._disks[key] = disks
        return render_labels(mask, disks, self.params, valid)

    def precompute(self, mask_path: Path, mask: np.ndarray,
                   valid: np.ndarray | None = None) -> bool:
        """Derive and store the labels of `mask` (the content of `mask_path`) unless the disk
        cache holds valid ones already; True if they were derived."""
        if valid is not None and np.all(valid):
            valid = None
        key = self._key(Path(mask_path), valid)
        if self._load(key) is not None:
            return False
        self._store(key, node_disks(mask, self.params, valid))
        return True

    def _key(self, mask_path: Path, valid: np.ndarray | None) -> str:
        try:
            stat = mask_path.stat()
        except OSError as error:
            raise DataError(f"{mask_path}: cannot read file ({error.strerror})") from None
        text = (f"{self.FORMAT}|{mask_path.resolve()}|{stat.st_mtime_ns}|{stat.st_size}"
                f"|{self.params!r}")
        if valid is not None:
            # Bits packed first: an eighth of the bytes to hash.
            text += f"|valid:{hashlib.sha1(np.packbits(valid)).hexdigest()}|{valid.shape}"
        return hashlib.sha1(text.encode()).hexdigest()

    def _load(self, key: str) -> np.ndarray | None:
        if self.cache_dir is None:
            return None
        path = self.cache_dir / f"{key}.npz"
        try:
            return read_cache_file(path, key)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (CacheFileError, OSError) as error:
            if path not in self._reported:
                self._reported.add(path)
                warnings.warn(f"{path}: label-cache file {error}; deriving its labels anew",
                              stacklevel=3)
            return None

    def _store(self, key: str, disks: np.ndarray) -> None:
        if self.cache_dir is None:
            return
        try:
            write_cache_file(self.cache_dir / f"{key}.npz", key, disks)
        except OutputError as error:
            # A read-only or full disk still trains: the labels stay in this process's memory.
            warnings.warn(f"label cache not writable: {error}; the labels stay in memory (set "
                          "data_loader.args.label_cache_dir to keep them between runs)",
                          stacklevel=3)
            self.cache_dir = None
