"""Fuzzing helpers: mutations of real-format seed files, and a runner that calls a reader on each
mutant in a forked child with a time and memory limit, classifying how it ended.

The mutation generators are plain functions from seed bytes (or text) and a `random.Random` to
named mutants, so that new formats (GeoTIFF seeds, say) need only a seed file.
"""
import json
import math
import os
import pickle
import random
import resource
import select
import signal
import struct
import time
import traceback
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from utils.errors import UserError

Mutant = tuple[str, bytes]

INTERESTING_INTEGERS = (0, 1, 0x7F, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF)


def truncate(data: bytes, rng: random.Random) -> Mutant:
    cut = rng.randrange(len(data)) if data else 0
    return f"truncated at {cut}", data[:cut]


def flip_bits(data: bytes, rng: random.Random) -> Mutant:
    mutant = bytearray(data)
    count = rng.choice((1, 2, 8, 32))
    for _ in range(count if data else 0):
        mutant[rng.randrange(len(mutant))] ^= 1 << rng.randrange(8)
    return f"{count} bit flips", bytes(mutant)


def overwrite(data: bytes, rng: random.Random) -> Mutant:
    """A run of bytes replaced by an interesting integer (big- or little-endian) or 0xFF."""
    if len(data) < 4:
        return "overwrite of a short file", data + b"\xff\xff\xff\xff"
    at = rng.randrange(len(data) - 3)
    value = rng.choice(INTERESTING_INTEGERS)
    packed = struct.pack(rng.choice((">I", "<I")), value)
    return f"0x{value:x} at {at}", data[:at] + packed + data[at + 4:]


def insert_junk(data: bytes, rng: random.Random) -> Mutant:
    at = rng.randrange(len(data) + 1)
    junk = rng.randbytes(rng.choice((1, 7, 100)))
    return f"{len(junk)} junk bytes at {at}", data[:at] + junk + data[at:]


def duplicate_chunk(data: bytes, rng: random.Random) -> Mutant:
    if not data:
        return "empty", data
    start = rng.randrange(len(data))
    end = min(len(data), start + rng.randrange(1, 512))
    return f"bytes {start}:{end} repeated", data[:end] + data[start:end] + data[end:]


def zero_run(data: bytes, rng: random.Random) -> Mutant:
    if not data:
        return "empty", data
    start = rng.randrange(len(data))
    end = min(len(data), start + rng.randrange(1, 256))
    return f"bytes {start}:{end} zeroed", data[:start] + bytes(end - start) + data[end:]


BYTE_MUTATIONS: tuple[Callable[[bytes, random.Random], Mutant], ...] = (
    truncate, flip_bits, overwrite, insert_junk, duplicate_chunk, zero_run)


def byte_mutants(seed: bytes, rng: random.Random, count: int,
                 extra: tuple[Callable[[bytes, random.Random], Mutant], ...] = ()
                 ) -> Iterator[Mutant]:
    """`count` mutants of `seed`, each from one of the generic byte mutations or of `extra`
    (format-aware ones), chosen at random; always starts with the empty file."""
    yield "empty file", b""
    mutations = BYTE_MUTATIONS + extra
    for _ in range(count - 1):
        yield rng.choice(mutations)(seed, rng)


# PNG: chunks are length, type, data, CRC; a decoder checks the CRC first, so mutations of the
# header are re-signed to reach the code that reads the values.

def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, at = [], 8
    while at + 8 <= len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        chunks.append((data[at + 4:at + 8], data[at + 8:at + 8 + length]))
        at += 12 + length
    return chunks


def png_bytes(chunks: list[tuple[bytes, bytes]]) -> bytes:
    out = [b"\x89PNG\r\n\x1a\n"]
    for kind, body in chunks:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        out.append(struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc))
    return b"".join(out)


def png_header_mutation(data: bytes, rng: random.Random) -> Mutant:
    """A valid-CRC IHDR declaring a huge or zero size, another bit depth or colour type."""
    chunks = png_chunks(data)
    width, height, depth, colour, *rest = struct.unpack(">IIBBBBB", chunks[0][1])
    field = rng.choice(("size", "depth", "colour"))
    if field == "size":
        width, height = rng.choice(((0x7FFFFFFF, 1), (100_000, 100_000), (0, height), (1, 1),
                                    (width * 4, height)))
    elif field == "depth":
        depth = rng.choice((1, 2, 4, 16, 7))
    else:
        colour = rng.choice((0, 2, 3, 4, 5, 6))
    chunks[0] = (b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, *rest))
    return f"IHDR {width}x{height} depth {depth} colour {colour}", png_bytes(chunks)


def png_data_mutation(data: bytes, rng: random.Random) -> Mutant:
    """Image data damaged (bit flips, cut, or a zlib bomb) behind a valid CRC."""
    chunks = png_chunks(data)
    index = next(i for i, (kind, _) in enumerate(chunks) if kind == b"IDAT")
    body = chunks[index][1]
    kind = rng.choice(("flip", "cut", "bomb", "drop"))
    if kind == "flip":
        body = flip_bits(body, rng)[1]
    elif kind == "cut":
        body = body[:rng.randrange(len(body))]
    elif kind == "bomb":
        body = zlib.compress(bytes(200_000_000), 9)  # 200 MB of zeros in ~200 kB
    if kind == "drop":
        del chunks[index]
    else:
        chunks[index] = (b"IDAT", body)
    return f"IDAT {kind}", png_bytes(chunks)


PNG_MUTATIONS = (png_header_mutation, png_data_mutation)


# TIFF: the header is a chain of IFDs of 12-byte entries (tag, type, count, value or offset);
# the mutation rewrites one entry's value in place, to reach the code that trusts it.

TIFF_SIZE_TAGS = {256: "ImageWidth", 257: "ImageLength", 273: "StripOffsets",
                  277: "SamplesPerPixel", 278: "RowsPerStrip", 279: "StripByteCounts",
                  258: "BitsPerSample", 322: "TileWidth", 323: "TileLength", 324: "TileOffsets",
                  325: "TileByteCounts", 259: "Compression"}


def tiff_entries(data: bytes) -> tuple[str, list[tuple[int, int, int]]]:
    """Byte order ("<" or ">") and (tag, type, entry offset) of the first IFD of a classic
    TIFF; no entries for anything else (BigTIFF, a damaged header)."""
    if len(data) < 8 or data[:2] not in (b"II", b"MM"):
        return "<", []
    order = "<" if data[:2] == b"II" else ">"
    (magic, ifd) = struct.unpack(order + "HI", data[2:8])
    if magic != 42 or ifd + 2 > len(data):
        return order, []
    (count,) = struct.unpack(order + "H", data[ifd:ifd + 2])
    entries = []
    for index in range(count):
        at = ifd + 2 + 12 * index
        if at + 12 > len(data):
            break
        tag, kind = struct.unpack(order + "HH", data[at:at + 4])
        entries.append((tag, kind, at))
    return order, entries


def tiff_header_mutation(data: bytes, rng: random.Random) -> Mutant:
    """A size, offset, count or compression entry of the first IFD set to a huge, zero or odd
    value (a decompression bomb declares 2^31 x 2^31 pixels in a few bytes)."""
    order, entries = tiff_entries(data)
    entries = [e for e in entries if e[0] in TIFF_SIZE_TAGS and e[1] in (3, 4)]
    if not entries:
        return flip_bits(data, rng)
    tag, kind, at = rng.choice(entries)
    value = rng.choice((0, 1, 7, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 100_000))
    if kind == 3:  # SHORT: the value sits in the entry's first two value bytes
        value &= 0xFFFF
        packed = struct.pack(order + "H", value) + data[at + 10:at + 12]
    else:
        packed = struct.pack(order + "I", value)
    return (f"TIFF {TIFF_SIZE_TAGS[tag]} = {value}",
            data[:at + 4] + struct.pack(order + "I", 1) + packed + data[at + 12:])


TIFF_MUTATIONS = (tiff_header_mutation, tiff_header_mutation)


# JSON: mutate the parsed document (a value replaced by a wrong type, NaN, inf, a huge number;
# a key dropped) or the text (truncation, bit flips, deep nesting).

WRONG_VALUES: tuple[Any, ...] = (None, True, 0, -1, 10**400, 1e308, math.nan, math.inf,
                                 -math.inf, "", "text", [], [[]], {}, [1, "a"], {"type": None})


def json_paths(node: Any, prefix: tuple = ()) -> Iterator[tuple]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from json_paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node[:20]):
            yield from json_paths(value, (*prefix, index))


def json_value_mutation(document: Any, rng: random.Random,
                        values: tuple[Any, ...] = WRONG_VALUES) -> tuple[str, Any]:
    """A copy of `document` with one value replaced by one of `values`, or one key removed."""
    mutant = json.loads(json.dumps(document))
    paths = [p for p in json_paths(mutant) if p]
    path = rng.choice(paths)
    parent = mutant
    for key in path[:-1]:
        parent = parent[key]
    if isinstance(parent, dict) and rng.random() < 0.2:
        del parent[path[-1]]
        return f"{'.'.join(map(str, path))} removed", mutant
    value = rng.choice(values)
    parent[path[-1]] = value
    return f"{'.'.join(map(str, path))} = {str(value)[:20]}", mutant


EXTREME_NUMBERS = (math.nan, math.inf, -math.inf, 1e308, -1e308, 10**400, 5e-324, -0.0)


def json_number_mutation(document: Any, rng: random.Random) -> tuple[str, Any]:
    """A copy of `document` with one number (a coordinate, a size) set to NaN, inf, 1e308, ..."""
    mutant = json.loads(json.dumps(document))
    paths = []
    for path in json_paths(mutant):
        node = mutant
        for key in path:
            node = node[key]
        if path and isinstance(node, (int, float)) and not isinstance(node, bool):
            paths.append(path)
    if not paths:
        return json_value_mutation(document, rng)
    path = rng.choice(paths)
    parent = mutant
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value = rng.choice(EXTREME_NUMBERS)
    return f"{'.'.join(map(str, path))} = {str(value)[:20]}", mutant


def json_mutants(document: Any, rng: random.Random, count: int) -> Iterator[Mutant]:
    """`count` mutated JSON texts of `document`: wrong values, extreme numbers (NaN, inf, huge),
    text-level damage (truncation, bit flips, junk) and one deeply nested document."""
    text = json.dumps(document).encode()
    yield "deep nesting", b"[" * 100_000 + b"]" * 100_000
    for _ in range(count - 1):
        draw = rng.random()
        if draw < 0.7:
            name, mutant = (json_value_mutation if draw < 0.4 else json_number_mutation)(
                document, rng)
            yield name, json.dumps(mutant).encode()  # NaN and inf as JavaScript literals
        else:
            yield rng.choice((truncate, flip_bits, insert_junk))(text, rng)


# Checkpoints: zip archives of a pickle and tensor storages. Damage the archive, lie in its
# central directory about sizes, or pickle wrong types inside a well-formed archive.

def zip_size_lie(data: bytes, rng: random.Random) -> Mutant:
    """One central-directory entry declares a huge (or zero) compressed or uncompressed size."""
    entries = [i for i in range(len(data) - 4) if data[i:i + 4] == b"PK\x01\x02"]
    if not entries:
        return flip_bits(data, rng)
    at = rng.choice(entries) + rng.choice((20, 24))  # compressed / uncompressed size fields
    value = rng.choice((0, 0x7FFFFFFF, 0xFFFFFFFE))
    return f"zip entry size 0x{value:x}", data[:at] + struct.pack("<I", value) + data[at + 4:]


def zip_entry_flip(data: bytes, rng: random.Random) -> Mutant:
    """A bit flip inside the pickle of a checkpoint (`data.pkl`), where the structure lives."""
    at = data.find(b"data.pkl")
    if at < 0:
        return flip_bits(data, rng)
    position = at + 8 + rng.randrange(30, 400)
    mutant = bytearray(data)
    mutant[min(position, len(mutant) - 1)] ^= 1 << rng.randrange(8)
    return f"pickle bit flip at {position}", bytes(mutant)


CHECKPOINT_MUTATIONS = (zip_size_lie, zip_entry_flip)


@dataclass
class Outcome:
    """How one call ended: "ok", "error" (a UserError: `message`), "crash" (another exception:
    `message` is its traceback), "killed" (a signal, e.g. the memory or time limit) or "hang"."""

    kind: str
    message: str
    seconds: float


def run_isolated(function: Callable[[], object], time_limit: float = 20.0,
                 memory_limit: int = 2 << 30) -> Outcome:
    """Call `function()` in a forked child whose address space may grow by `memory_limit` bytes
    and which is killed after `time_limit` seconds."""
    reader, writer = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(reader)
        try:
            with open("/proc/self/statm") as file:
                pages = int(file.read().split()[0])
            limit = pages * os.sysconf("SC_PAGE_SIZE") + memory_limit
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.alarm(math.ceil(time_limit) + 1)
            try:
                function()
                result = ("ok", "")
            except UserError as error:
                result = ("error", str(error))
            except BaseException:
                result = ("crash", traceback.format_exc())
            with os.fdopen(writer, "wb") as pipe:
                pickle.dump(result, pipe)
        finally:
            os._exit(0)
    os.close(writer)
    chunks = []
    deadline = start + time_limit
    with os.fdopen(reader, "rb") as pipe:
        while True:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([pipe], [], [], max(remaining, 0))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return Outcome("hang", f"no result after {time_limit} s", time.monotonic() - start)
            chunk = os.read(pipe.fileno(), 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    seconds = time.monotonic() - start
    if not chunks:
        return Outcome("killed", f"exit status {os.waitstatus_to_exitcode(status)}", seconds)
    kind, message = pickle.loads(b"".join(chunks))
    return Outcome(kind, message, seconds)


def is_one_line_naming(message: str, name: str) -> bool:
    """A one-line message that names the file (by its path or file name)."""
    return "\n" not in message.strip() and name in message
