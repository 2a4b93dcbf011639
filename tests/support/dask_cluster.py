"""Real Dask clusters for tests and benchmarks: a LocalCluster, or separate processes.

:func:`process_cluster` starts a ``dask scheduler`` and ``dask worker --nanny`` processes on
127.0.0.1 as a user would from a shell, so a test can SIGKILL a worker and watch the
nanny restart it. Workers run without ``MALLOC_TRIM_THRESHOLD_`` (see ``DESIGN.md``)
through a Dask config file, the one way to unset a nanny's pre-spawn variable from outside.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from distributed import Client

DASK = Path(sys.executable).with_name("dask")
STARTUP_TIMEOUT = 120.0


@dataclass
class ProcessCluster:
    """A running ``dask scheduler`` plus ``dask worker --nanny`` processes."""

    scheduler_address: str
    scheduler_file: Path
    env: dict[str, str]
    processes: list[subprocess.Popen] = field(default_factory=list)

    def client(self) -> Client:
        """A new client connected to the scheduler (close it when done)."""
        return Client(self.scheduler_address, set_as_default=False)

    def worker_pids(self, client: Client) -> dict[str, int]:
        """Worker address -> pid of the worker process (the nanny's child)."""
        return client.run(os.getpid)


def dask_config_dir(root: Path) -> Path:
    """Write a Dask config that drops ``MALLOC_TRIM_THRESHOLD_`` from worker processes."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "imaging-lab.yaml").write_text(
        "distributed:\n  nanny:\n    pre-spawn-environ:\n      MALLOC_TRIM_THRESHOLD_: null\n"
    )
    return root


def _wait_for_file(path: Path, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not path.exists() or not path.read_text().strip():
        if process.poll() is not None:
            raise RuntimeError(f"dask scheduler exited with {process.returncode}:\n{log.read_text()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"dask scheduler did not write {path}:\n{log.read_text()}")
        time.sleep(0.1)


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def process_cluster(workdir: Path, n_workers: int = 2, threads_per_worker: int = 1) -> Iterator[ProcessCluster]:
    """Start ``dask scheduler`` and ``n_workers`` ``dask worker --nanny`` processes on 127.0.0.1.

    Parameters
    ----------
    workdir : Path
        Logs, the scheduler file, the Dask config and the workers' local directories.
    n_workers : int
        Separate ``dask worker`` processes (each a nanny with one worker process).
    threads_per_worker : int

    Yields
    ------
    ProcessCluster
    """
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DASK_CONFIG": str(dask_config_dir(workdir / "dask-config"))}
    env.pop("MALLOC_TRIM_THRESHOLD_", None)
    scheduler_file = workdir / "scheduler.json"
    started: list[subprocess.Popen] = []

    def launch(name: str, *args: str) -> subprocess.Popen:
        log = workdir / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen([str(DASK), *args], env=env, stdout=out, stderr=subprocess.STDOUT)
        started.append(process)
        return process

    try:
        scheduler = launch(
            "scheduler", "scheduler", "--host", "127.0.0.1", "--port", "0",
            "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(scheduler_file),
        )  # fmt: skip
        _wait_for_file(scheduler_file, scheduler, workdir / "scheduler.log")
        address = json.loads(scheduler_file.read_text())["address"]
        for index in range(n_workers):
            launch(
                f"worker-{index}", "worker", address, "--nanny", "--nworkers", "1",
                "--nthreads", str(threads_per_worker), "--host", "127.0.0.1", "--no-dashboard",
                "--name", f"worker-{index}", "--local-directory", str(workdir / f"worker-{index}"),
            )  # fmt: skip
        with Client(address, set_as_default=False) as client:
            client.wait_for_workers(n_workers, timeout=STARTUP_TIMEOUT)
        yield ProcessCluster(address, scheduler_file, env, started)
    finally:
        _stop(started[1:])
        _stop(started[:1])


def wait_for_restart(client: Client, n_workers: int, victim: int, timeout: float = STARTUP_TIMEOUT) -> dict[str, int]:
    """Wait until a nanny has replaced the killed worker process ``victim``; return address -> pid."""
    deadline = time.monotonic() + timeout
    while True:
        pids = client.run(os.getpid)
        if len(pids) == n_workers and victim not in pids.values():
            return pids
        if time.monotonic() > deadline:
            raise TimeoutError(f"worker process {victim} was not replaced: {pids}")
        time.sleep(0.2)
