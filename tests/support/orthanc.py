"""A real DICOMweb archive for tests: Debian's Orthanc with its DICOMweb plugin on 127.0.0.1.

:func:`start_orthanc` writes a configuration into a temporary folder (storage in it too),
with the HTTP and DICOM ports free on this machine, ``RemoteAccessAllowed: false``,
authentication on with one registered user and a random password, the plugin
``/usr/share/orthanc/plugins/libOrthancDicomWeb.so`` serving ``/dicom-web/``, and the
DICOM server off (it would listen on every interface). It starts ``/usr/sbin/Orthanc
cfg.json`` and waits until ``GET /system`` answers. :meth:`OrthancServer.stopped` stops
it for the length of a ``with`` block and starts it again on the same ports and storage
(the "archive down" tests). ``.ci/run`` installs ``orthanc`` and ``orthanc-dicomweb``.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests

from support.gcs import free_port

__all__ = ["ORTHANC", "ORTHANC_DICOMWEB_PLUGIN", "OrthancServer", "start_orthanc"]

ORTHANC = "/usr/sbin/Orthanc"
ORTHANC_DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"


@dataclass
class OrthancServer:
    """A running Orthanc: where it answers, who may log in, and its process."""

    folder: Path
    http_port: int
    username: str
    password: str = field(repr=False)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (Orthanc's REST API)."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        """The archive address the platform takes: ``dicomweb+http://127.0.0.1:<port>/dicom-web``."""
        return f"dicomweb+{self.url}/dicom-web"

    @property
    def auth(self) -> tuple[str, str]:
        return self.username, self.password

    @property
    def log_path(self) -> Path:
        return self.folder / "orthanc.log"

    # ------------------------------------------------------------------ REST helpers
    def upload(self, data: bytes) -> dict:
        """POST one DICOM file to ``/instances``; return Orthanc's answer (``ID``, ``Status``...)."""
        response = requests.post(f"{self.url}/instances", data=data, auth=self.auth, timeout=30)
        response.raise_for_status()
        return response.json()

    def get(self, path: str) -> requests.Response:
        """GET a REST path with the registered user's credentials."""
        response = requests.get(f"{self.url}/{path.lstrip('/')}", auth=self.auth, timeout=30)
        response.raise_for_status()
        return response

    def instance_count(self) -> int:
        return len(self.get("instances").json())

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 30.0) -> None:
        """Start Orthanc on the configuration in :attr:`folder` and wait for ``GET /system``."""
        log = open(self.log_path, "ab")  # noqa: SIM115 - the process keeps it open
        self.process = subprocess.Popen(
            [ORTHANC, str(self.folder / "cfg.json")], stdout=log, stderr=subprocess.STDOUT, cwd=self.folder
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/system", auth=self.auth, timeout=2).ok:
                    return
            time.sleep(0.2)
        tail = self.log_path.read_text(errors="replace")[-2000:]
        self.stop()
        raise RuntimeError(f"Orthanc did not answer on {self.url} within {timeout:g} s:\n{tail}")

    def stop(self) -> None:
        """Terminate Orthanc and wait for it."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        """Stop the archive for the block, then start it again (same port, same storage)."""
        self.stop()
        try:
            yield
        finally:
            self.start()


def start_orthanc(username: str = "researcher") -> OrthancServer:
    """Configure and start Orthanc with DICOMweb on free ports of 127.0.0.1.

    Returns
    -------
    OrthancServer
        Its password is random; stop it with :meth:`OrthancServer.stop` and remove
        :attr:`OrthancServer.folder`.

    Raises
    ------
    RuntimeError
        If Orthanc or its DICOMweb plugin is not installed, or it does not start.
    """
    if not Path(ORTHANC).exists() or not Path(ORTHANC_DICOMWEB_PLUGIN).exists():
        raise RuntimeError(
            f"{ORTHANC} with {ORTHANC_DICOMWEB_PLUGIN} is needed: apt-get install orthanc orthanc-dicomweb"
        )
    folder = Path(tempfile.mkdtemp(prefix="orthanc-"))
    server = OrthancServer(folder, free_port(), username, secrets.token_urlsafe(16))
    config = {
        "Name": "imaging-lab-tests",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "storage"),
        "HttpPort": server.http_port,
        "DicomPort": free_port(),
        "DicomServerEnabled": False,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {username: server.password},
        "Plugins": [ORTHANC_DICOMWEB_PLUGIN],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "StableAge": 1,
        "HttpTimeout": 30,
    }
    path = folder / "cfg.json"
    path.write_text(json.dumps(config, indent=1))
    path.chmod(0o600)
    try:
        server.start()
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return server
