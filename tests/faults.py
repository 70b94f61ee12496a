"""Faults injected from outside the code under test: SIGKILL a real Ray actor process.

Nothing in lssed knows about these (the package has no test hooks): a test finds the process
as an operator would, in Ray's actor table, and kills it while the code under test runs.

    with kill_actor_when(checkpoint_written(out / "runs", epoch=2)) as killed:
        train(...)
    assert killed, "the worker was not killed"
"""

from __future__ import annotations

import os
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

# Ray Train V2's worker actor class (ray/train/v2/_internal/execution/worker_group/worker.py
# in the installed Ray 2.60): one process per training worker.
TRAIN_WORKER = "RayTrainWorker"


def live_actor_pids(class_name: str) -> list[int]:
    """PIDs of the live actors of ``class_name`` in the connected Ray cluster, ascending.

    Read from the GCS actor table. ``ray.util.state.list_actors`` serves the same table but
    through the dashboard, which the test session's Ray does not start (tests/conftest.py),
    and the table holds no Train world rank, so a caller cannot pick a rank either way.
    """
    from ray._private import state

    return sorted(int(a["Pid"]) for a in state.actors().values()
                  if a["ActorClassName"] == class_name and a["State"] == "ALIVE" and a["Pid"])


def checkpoint_written(runs_dir: Path, epoch: int) -> Callable[[], bool]:
    """True once a run under ``runs_dir`` (``<out>/runs``) holds a whole checkpoint of ``epoch``.

    Whole: its state loads. The file exists while it is still being written, and a worker
    killed then leaves a torn checkpoint that resume skips (it falls back to an older one, or
    starts over), which is not what a test of resuming wants.
    """
    import torch

    from lssed.train.trainer import CHECKPOINT_DIR, STATE_FILE

    pattern = f"*/{CHECKPOINT_DIR.format(epoch)}/{STATE_FILE}"

    def complete() -> bool:
        for path in Path(runs_dir).glob(pattern):
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception:  # noqa: BLE001 - partly written: look again at the next poll
                continue
            if int(state.get("epoch", -1)) == epoch:
                return True
        return False

    return complete


@contextmanager
def kill_actor_when(condition: Callable[[], bool], class_name: str = TRAIN_WORKER, *,
                    timeout_s: float = 600.0, poll_s: float = 0.05) -> Iterator[list[int]]:
    """Run the ``with`` body; meanwhile, once ``condition()`` holds, SIGKILL one live ``class_name`` actor.

    Yields a list that receives the killed pid; it stays empty when the body ended first (or
    no such actor was alive before ``timeout_s``), which the test should assert against.
    """
    killed: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + timeout_s
        while not stop.is_set() and time.monotonic() < deadline:
            if condition():
                pids = live_actor_pids(class_name)
                if pids:
                    os.kill(pids[-1], signal.SIGKILL)
                    killed.append(pids[-1])
                    return
            stop.wait(poll_s)

    watcher = threading.Thread(target=watch, name="kill-actor-when", daemon=True)
    watcher.start()
    try:
        yield killed
    finally:
        stop.set()
        watcher.join()


def in_background(fn: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Run ``fn`` on a daemon thread while the test injects a fault; the box gets ``result`` or ``error``."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


def wait_for(cond: Callable[[], bool], what: str, timeout: float = 300.0) -> None:
    """Poll ``cond`` until it holds; fail the test naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")
