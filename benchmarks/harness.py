"""What every benchmark shares: interleaved timing, peak memory and the machine line.

Timing (`interleaved`, `time_call`): the variants of one measurement take turns, one call each per
round, so that a change of the machine's load during the run (other jobs on a shared CPU) weighs
on all of them alike; each variant's seconds come back as a `Timing` (median, mean, min, max).
On a CUDA device the clock is read after the device has finished.

Peak memory (`PeakMemory`): on a GPU the allocator's peak (`torch.cuda.max_memory_allocated`); on
the CPU the process's peak resident set (VmHWM of /proc/self/status), which writing "5" to
/proc/self/clear_refs resets, or, where that is refused, the peak since the process started
(ru_maxrss). A command run as a child process is measured by the children's ru_maxrss of a
parent of its own (`measured_command`). The memory columns of RESULTS.md were measured this way: `benchmark`'s
rows with VmHWM (Linux, reset after the warm-up), `bench_scene`'s scenes with the child's
ru_maxrss.

Machine (`machine_description`, `machine_line`): CPU model and cores, memory, GPU, torch version
and threads, load averages. Every benchmark prints the line first: on a shared machine a number
means little without the load it was measured under.
"""
import contextlib
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

MIB = 2**20


@dataclass(frozen=True)
class Timing:
    """Seconds of one variant's timed calls, in call order, and the value of its last call."""

    seconds: tuple[float, ...]
    value: Any = None

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.seconds)

    @property
    def low(self) -> float:
        return min(self.seconds)

    @property
    def high(self) -> float:
        return max(self.seconds)

    def summary(self) -> str:
        """'median X s over N runs (min Y s, max Z s)'."""
        return (f"median {self.median:.3f} s over {len(self.seconds)} runs "
                f"(min {self.low:.3f} s, max {self.high:.3f} s)")


def interleaved(variants: Mapping[Hashable, Callable[[], Any]], runs: int, *, warmup: int = 0,
                clock: Callable[[], float] = time.perf_counter,
                device: torch.device | None = None, memory: "PeakMemory | None" = None,
                on_result: Callable[[Hashable, int, Any], None] | None = None
                ) -> dict[Hashable, Timing]:
    """Time every variant `runs` times, round-robin: round r calls each variant once, in order.

    warmup: untimed rounds first (compilation, caches, the allocator); memory: a peak to reset
    once they are done, so that it covers the timed calls only (all variants together); clock:
    `time.process_time` times the process's CPU instead of the wall clock; device: a CUDA device
    is synchronised before the clock is read; on_result(name, round, value) sees each timed call's
    value, outside the timed span.
    """
    if runs < 1:
        raise ValueError(f"runs: must be >= 1, got {runs}")

    def synchronize() -> None:
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        for call in variants.values():
            call()
    synchronize()
    if memory is not None:
        memory.reset()
    seconds: dict[Hashable, list[float]] = {name: [] for name in variants}
    last: dict[Hashable, Any] = {}
    for round_index in range(runs):
        for name, call in variants.items():
            start = clock()
            value = call()
            synchronize()
            seconds[name].append(clock() - start)
            last[name] = value
            if on_result is not None:
                on_result(name, round_index, value)
    return {name: Timing(tuple(seconds[name]), last[name]) for name in variants}


def time_call(call: Callable[[], Any], runs: int = 1, **options: Any) -> Timing:
    """`interleaved` with one variant: `runs` timed calls of `call` (same options)."""
    return interleaved({"call": call}, runs, **options)["call"]


def proc_field(path: str, key: str) -> str | None:
    """The value of the first `key: value` line of a Linux /proc file, None where there is none."""
    with contextlib.suppress(OSError):
        for line in Path(path).read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key:
                return value.strip()
    return None


class PeakMemory:
    """Peak memory from `reset()` on: CUDA allocator peak, or the process's peak resident set.

    `kind` says which one `mib()` reports.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.kind = "cuda max_memory_allocated" if device.type == "cuda" else "peak RSS (VmHWM)"

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            self.kind = "peak RSS since process start (ru_maxrss)"

    def mib(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / MIB
        peak_kib = proc_field("/proc/self/status", "VmHWM") if "VmHWM" in self.kind else None
        if peak_kib is None:
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return int(peak_kib.split()[0]) / 1024


_MEASURED = ("import resource, subprocess, sys, time; start = time.perf_counter(); "
             "code = subprocess.call(sys.argv[1:]); "
             "print('measured', time.perf_counter() - start, "
             "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
             "sys.exit(code)")


def measured_command(args: list[str], cwd: Path) -> tuple[float, float, str]:
    """(seconds, peak resident memory in GiB, stderr) of `python <args>`, run in a fresh
    parent of its own, so that its peak is not that of an earlier, larger child. A failed command
    raises RuntimeError with the end of its stderr."""
    result = subprocess.run([sys.executable, "-c", _MEASURED, sys.executable, *args], cwd=cwd,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:4])} ...: {result.stderr[-2000:]}")
    _, seconds, peak_kib = result.stderr.strip().splitlines()[-1].split()
    return float(seconds), int(peak_kib) / 2**20, result.stderr


def machine_description(device: torch.device | None = None) -> dict[str, Any]:
    """CPU model and cores, memory, GPU name (of a CUDA `device`), torch/CUDA/Python versions,
    torch's intra-op threads and the 1, 5 and 15-minute load averages now."""
    memory_kib = proc_field("/proc/meminfo", "MemTotal")
    cuda = device is not None and device.type == "cuda"
    return {
        "cpu_model": proc_field("/proc/cpuinfo", "model name") or platform.processor() or None,
        "cpu_cores": os.cpu_count(),
        "memory_gib": round(int(memory_kib.split()[0]) / 2**20, 1) if memory_kib else None,
        "gpu": torch.cuda.get_device_name(device) if cuda else None,
        "torch": torch.__version__,
        "cuda": torch.version.cuda if cuda else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch_threads": torch.get_num_threads(),
        "load_average": list(os.getloadavg()),
    }


def machine_line(machine: dict[str, Any] | None = None) -> str:
    """One line of `machine` (a `machine_description`; by default this machine, now)."""
    m = machine if machine is not None else machine_description()
    load = ", ".join(f"{value:.2f}" for value in m["load_average"])
    threads = m["torch_threads"]
    return (f"machine: {m['cpu_model']}, {m['cpu_cores']} cores, {m['memory_gib']} GiB, "
            f"GPU {m['gpu'] or 'none'}; torch {m['torch']} ({threads} thread"
            f"{'' if threads == 1 else 's'}); load average {load} (1, 5, 15 min)")
