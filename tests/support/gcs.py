"""A real Google Cloud Storage endpoint for tests: ``gcp-storage-emulator`` on 127.0.0.1.

:func:`start_emulator` runs ``gcp-storage-emulator start --host 127.0.0.1 --port <free>
--in-memory`` as a subprocess, waits until it answers, and points gcsfs at it through
``STORAGE_EMULATOR_HOST``. Importing this module sets
``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false`` (unless set) because gcsfs reads it at import
time and otherwise waits out a 60 s gRPC probe on every call.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

__all__ = ["GcsEmulator", "free_port", "start_emulator"]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _emulator_command() -> str:
    beside_python = Path(sys.executable).with_name("gcp-storage-emulator")
    found = str(beside_python) if beside_python.exists() else shutil.which("gcp-storage-emulator")
    if not found:
        raise RuntimeError("gcp-storage-emulator is not installed: pip install gcp-storage-emulator")
    return found


@dataclass
class GcsEmulator:
    """A running emulator: its endpoint and process."""

    endpoint: str
    process: subprocess.Popen
    log_path: Path

    def new_bucket(self, prefix: str = "test") -> str:
        """Create a uniquely named bucket and return its name."""
        import gcsfs

        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        gcsfs.GCSFileSystem(token="anon").mkdir(name)
        return name

    def stop(self) -> None:
        """Terminate the emulator process and wait for it."""
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_emulator(timeout: float = 30.0) -> GcsEmulator:
    """Start ``gcp-storage-emulator`` and set ``STORAGE_EMULATOR_HOST`` to it.

    Raises
    ------
    RuntimeError
        If the emulator is not installed or does not answer within ``timeout`` seconds
        (the message holds the end of its log).
    """
    port = free_port()
    log_path = Path(tempfile.mkstemp(prefix="gcs-emulator-", suffix=".log")[1])
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [_emulator_command(), "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/storage/v1/b", timeout=1).read()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"gcp-storage-emulator did not start: {log_path.read_text()[-2000:]}") from None
            time.sleep(0.1)
    os.environ["STORAGE_EMULATOR_HOST"] = endpoint
    return GcsEmulator(endpoint, process, log_path)
