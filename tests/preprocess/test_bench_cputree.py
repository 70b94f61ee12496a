"""benchmarks/cputree.py: the CPU time of a process tree, children that end mid-block included."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="CpuTree reads Linux /proc")


def _cputree():
    spec = importlib.util.spec_from_file_location("cputree", ROOT / "benchmarks" / "cputree.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}: pass\n"


def test_counts_children_that_ran_and_ended_inside_the_block():
    cputree = _cputree()
    with cputree.CpuTree(interval_s=0.05) as tree:
        # a child burns 0.6 s of CPU, sleeps so the sampler sees its total, then exits
        subprocess.run([sys.executable, "-c", BURN.format(s=0.6) + "time.sleep(0.3)\n"], check=True)
    assert tree.wall_s >= 0.6
    children = {pid: cpu for pid, (_, cpu) in tree.by_pid().items() if pid != tree.root}
    assert len(children) >= 1
    assert 0.5 <= sum(children.values()) <= 2.0
    assert 0.5 <= tree.cpu_s <= tree.wall_s * 2 + 0.5
    assert sum(tree.by_name().values()) == pytest.approx(tree.cpu_s)


def test_an_idle_tree_costs_almost_nothing():
    """A sleeping process's tree (not pytest's own: a session's Ray processes are its children)."""
    import time

    cputree = _cputree()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3)"])
    try:
        time.sleep(0.3)  # past the interpreter's start-up
        with cputree.CpuTree(interval_s=0.05, root=child.pid) as tree:
            time.sleep(0.5)
    finally:
        child.kill()
        child.wait()
    assert child.pid in tree.by_pid()
    assert tree.cpu_s < 0.1


def test_point_sample_includes_a_live_child():
    cputree = _cputree()
    child = subprocess.Popen([sys.executable, "-c", BURN.format(s=0.5) + "import time\ntime.sleep(5)\n"])
    try:
        import os
        import time

        before = cputree.tree_cpu_s(os.getpid())
        deadline = time.monotonic() + 20
        while cputree.tree_cpu_s(os.getpid()) - before < 0.45 and time.monotonic() < deadline:
            time.sleep(0.1)  # the child burns 0.5 s (slower on a loaded machine), then sleeps
        time.sleep(0.3)
        assert 0.45 <= cputree.tree_cpu_s(os.getpid()) - before <= 1.5
    finally:
        child.kill()
        child.wait()
