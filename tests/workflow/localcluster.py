"""A real two-node Ray cluster on this machine for the job-submission tests.

Each node is ``ray start --block`` in its own process group, with its own ports and (for the
head) its own temp dir, so it never touches the session Ray of the other tests or anyone
else's Ray. Teardown signals exactly those process groups (and any stray process whose
command line names our temp dir), never ``ray stop``, which would stop every Ray here.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
RAY = str(VENV_BIN / "ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cluster_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    env.update(
        RAY_AUTH_MODE="disabled",  # both sides (docs/cluster.md, "Token authentication")
        RAY_ENABLE_UV_RUN_RUNTIME_ENV="0",
        RAY_DATA_DISABLE_PROGRESS_BARS="1",
        RAY_USAGE_STATS_ENABLED="0",
        OMP_NUM_THREADS="1",
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    return env


def _node_ports() -> list[str]:
    return [
        f"--node-manager-port={free_port()}",
        f"--object-manager-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
    ]


@dataclass
class LocalCluster:
    temp_dir: Path
    gcs_port: int = field(default_factory=free_port)
    dashboard_port: int = field(default_factory=free_port)
    procs: list[subprocess.Popen] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def _start(self, name: str, args: list[str]) -> None:
        log = self.temp_dir / f"{name}.log"
        self.logs.append(log)
        with open(log, "wb") as fh:
            self.procs.append(subprocess.Popen([RAY, "start", "--block", "--disable-usage-stats", *args],
                                               stdout=fh, stderr=subprocess.STDOUT, env=cluster_env(),
                                               start_new_session=True))

    def start_head(self, *, num_cpus: int, resources: dict[str, float]) -> None:
        self._start("head", [
            "--head", "--node-ip-address=127.0.0.1", f"--port={self.gcs_port}",
            "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard_port}",
            f"--ray-client-server-port={free_port()}", f"--temp-dir={self.temp_dir / 'ray'}",
            f"--num-cpus={num_cpus}", "--num-gpus=0", f"--resources={json.dumps(resources)}",
            "--object-store-memory=200000000", *_node_ports(),
        ])

    def add_node(self, *, num_cpus: int, resources: dict[str, float]) -> None:
        # Its own temp dir: nodes sharing one would unpack the job's working dir into the
        # same runtime_resources folder, one deleting files while the other imports them.
        name = f"n{len(self.procs)}"
        self._start(name, [
            f"--address={self.address}", "--node-ip-address=127.0.0.1", f"--temp-dir={self.temp_dir / name}",
            f"--num-cpus={num_cpus}", "--num-gpus=0", f"--resources={json.dumps(resources)}",
            "--object-store-memory=200000000", *_node_ports(),
        ])

    def wait_for_dashboard(self, timeout: float = 300) -> None:
        self._wait(lambda: urllib.request.urlopen(f"{self.dashboard}/api/version", timeout=5).status == 200,
                   timeout, "the dashboard")

    def alive_nodes(self) -> list[dict]:
        from ray.util.state import list_nodes

        return [n.__dict__ if hasattr(n, "__dict__") else dict(n)
                for n in list_nodes(address=self.dashboard, filters=[("state", "=", "ALIVE")],
                                   raise_on_missing_output=False)]

    def wait_for_nodes(self, n: int, timeout: float = 300) -> None:
        self._wait(lambda: len(self.alive_nodes()) >= n, timeout, f"{n} alive nodes")

    def _wait(self, ok, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"a `ray start` exited ({p.returncode}) while waiting for {what}:\n{self.tail()}")
            try:
                if ok():
                    return
            except Exception:  # noqa: BLE001 - not up yet
                pass
            time.sleep(2)
        raise TimeoutError(f"no {what} after {timeout:.0f} s:\n{self.tail()}")

    def tail(self, n: int = 4000) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-n:]}" for p in self.logs if p.exists())

    def kill_node(self, index: int) -> None:
        """SIGKILL node ``index``'s whole process group (raylet, workers, agents): the node is gone
        as when its machine dies. The head is index 0."""
        proc = self.procs[index]
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(30)

    def stop(self) -> None:
        """Signal our process groups, then anything still naming our temp dir; by pid only."""
        for sig, grace in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 5.0)):
            for p in self.procs:
                try:
                    os.killpg(p.pid, sig)  # the group `start_new_session` gave this node
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and any(p.poll() is None for p in self.procs):
                time.sleep(0.5)
        marker = str(self.temp_dir)
        for pid in _pids_naming(marker):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _pids_naming(text: str) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if text in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                out.append(int(entry.name))
        except OSError:
            continue
    return out


def short_temp_dir() -> Path:
    """Ray's unix sockets live under the temp dir: keep its path short."""
    return Path(tempfile.mkdtemp(prefix="lssed-rc-", dir="/tmp"))


def start_two_node_cluster(*, head_cpus: int, node_cpus: int, node_resource: str) -> LocalCluster:
    """Head + a second node with ``node_resource``. `ray start` gives a raylet 30 s to register,
    which a loaded machine can miss: a failed bring-up is torn down and tried again (3 times)."""
    errors = []
    for _attempt in range(3):
        c = LocalCluster(short_temp_dir())
        try:
            c.start_head(num_cpus=head_cpus, resources={"head": 1})
            c.wait_for_dashboard()
            c.add_node(num_cpus=node_cpus, resources={node_resource: node_cpus})
            c.wait_for_nodes(2)
            return c
        except (RuntimeError, TimeoutError) as exc:
            errors.append(str(exc)[-2000:])
            c.stop()
    raise RuntimeError("could not start the local two-node cluster:\n" + "\n\n".join(errors))
