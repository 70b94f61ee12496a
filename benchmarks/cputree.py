"""CPU seconds used by this process and all its descendants while a block runs (Linux /proc).

A local Ray started by this process (``ray.init``) runs GCS, raylet, the dashboard and every
worker and actor as its descendants, so the tree's CPU time is the whole cost of a Ray
pipeline on the machine: the work itself plus Ray's overhead (start-up, scheduling,
executor, object store), and none of the other load of a shared machine.

Processes can end during the block (Ray Data kills its actors when a dataset finishes), so
a background thread samples ``/proc/<pid>/stat`` every ``interval_s`` and keeps each
process's last value: a process that ends loses at most one interval of CPU time.

    with CpuTree() as tree:
        run_pipeline()
    print(tree.cpu_s, tree.wall_s, tree.by_name())
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from typing import Any

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _read_stat(pid: int) -> tuple[str, int, float] | None:
    """(command name, parent pid, user+system CPU seconds) of one process, or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read().decode(errors="replace")
    except OSError:
        return None
    # The name is in parentheses and may contain spaces: split after the last ')'.
    name = raw[raw.find("(") + 1: raw.rfind(")")]
    fields = raw[raw.rfind(")") + 2:].split()
    ppid = int(fields[1])
    cpu = (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime
    return name, ppid, cpu


def _tree(root: int) -> dict[int, tuple[str, float]]:
    stats: dict[int, tuple[str, int, float]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _read_stat(int(entry))
            if st is not None:
                stats[int(entry)] = st
    children: dict[int, list[int]] = defaultdict(list)
    for pid, (_, ppid, _) in stats.items():
        children[ppid].append(pid)
    out, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            out[pid] = (stats[pid][0], stats[pid][2])
        todo.extend(children.get(pid, ()))
    return out


def tree_cpu_s(root: int) -> float:
    """CPU seconds used so far by ``root`` and its live descendants (a point sample)."""
    return sum(cpu for _, cpu in _tree(root).values())


class CpuTree:
    """Context manager: ``cpu_s`` (whole process tree) and ``wall_s`` of the block."""

    def __init__(self, interval_s: float = 0.1, root: int | None = None) -> None:
        if not os.path.isdir("/proc"):
            raise RuntimeError("CpuTree reads /proc and needs Linux")
        self.interval_s, self.root = interval_s, root or os.getpid()
        self._start: dict[int, float] = {}
        self._last: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.wall_s = 0.0

    def _sample(self) -> None:
        for pid, (name, cpu) in _tree(self.root).items():
            self._last[pid] = (name, cpu)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __enter__(self) -> "CpuTree":
        self._start = {pid: cpu for pid, (_, cpu) in _tree(self.root).items()}
        self._last = {}
        self._t0 = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._sample()
        self.wall_s = time.perf_counter() - self._t0
        self._stop.set()
        self._thread.join()

    def by_pid(self) -> dict[int, tuple[str, float]]:
        """CPU seconds each process used during the block (processes started in it count from 0)."""
        return {pid: (name, cpu - self._start.get(pid, 0.0)) for pid, (name, cpu) in self._last.items()}

    def by_name(self) -> dict[str, float]:
        """CPU seconds per command name (e.g. raylet, gcs_server, ray::MapWorker), largest first."""
        acc: dict[str, float] = defaultdict(float)
        for name, cpu in self.by_pid().values():
            acc[name] += cpu
        return dict(sorted(acc.items(), key=lambda kv: -kv[1]))

    @property
    def cpu_s(self) -> float:
        return sum(cpu for _, cpu in self.by_pid().values())
