"""Start real Voilà, JupyterLab and Notebook 7 servers for browser tests, and stop them cleanly.

Each server listens on a free 127.0.0.1 port with a random token, keeps its Jupyter
config, runtime and settings in a private temporary folder (so nothing from the user's
home leaks in), and logs to a file that :class:`NotebookServer` shows when startup fails.
Servers run with stock settings, tornado's 10 MiB ``websocket_max_message_size``
included, as a user's would: the viewer and the upload drop zone send large data in
chunks, so no server needs a raised limit (Voilà gets the dashboards' own command line).

Example
-------
>>> with voila_server(notebook) as server:          # doctest: +SKIP
...     page.goto(server.url_for(notebook.name))
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

__all__ = [
    "NotebookServer",
    "free_port",
    "jupyterlab_server",
    "notebook7_server",
    "start_jupyterlab",
    "start_notebook7",
    "start_voila",
    "voila_server",
    "write_notebook",
]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_notebook(path: Path, cells: Sequence[str], kernel: str = "python3") -> Path:
    """Write a notebook of code cells (source strings) to ``path``."""
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    notebook.metadata["kernelspec"] = {"name": kernel, "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, str(path))
    return path


@dataclass
class NotebookServer:
    """A running Voilà or JupyterLab server.

    Attributes
    ----------
    kind : str
        ``"voila"``, ``"lab"`` or ``"notebook"`` (Notebook 7).
    port : int
    token : str
    root : pathlib.Path
        Folder the server serves.
    process : subprocess.Popen
    log_path : pathlib.Path
    """

    kind: str
    port: int
    token: str
    root: Path
    process: subprocess.Popen
    log_path: Path
    home: Path
    single_notebook: str | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url_for(self, notebook: str | None = None) -> str:
        """URL of the page that shows ``notebook`` (relative to :attr:`root`), token included."""
        token = f"token={quote(self.token)}"
        if self.kind == "voila":
            if self.single_notebook is not None or notebook is None:
                return f"{self.base_url}/?{token}"
            return f"{self.base_url}/voila/render/{quote(notebook)}?{token}"
        if self.kind == "notebook":
            page = "notebooks/" + quote(notebook) if notebook is not None else "tree"
        else:
            page = "lab/tree/" + quote(notebook) if notebook is not None else "lab"
        return f"{self.base_url}/{page}?{token}"

    def log(self) -> str:
        """The server's output so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_ready(self, timeout: float) -> None:
        """Wait until the server answers HTTP.

        Raises
        ------
        RuntimeError
            If the process exits or does not answer within ``timeout`` seconds (with its log).
        """
        # Voilà executes the notebook on GET /, so only probe a static file there.
        probe = "/voila/static/voila.js" if self.kind == "voila" else "/api/status"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} server exited with {self.process.returncode}:\n{self.log()}")
            try:
                request = urllib.request.Request(f"{self.base_url}{probe}?token={quote(self.token)}")
                with urllib.request.urlopen(request, timeout=2) as response:
                    if response.status < 500:
                        return
            except urllib.error.HTTPError as exc:
                if exc.code < 500:
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.kind} server did not answer within {timeout} s:\n{self.log()}")

    def stop(self, timeout: float = 15.0) -> None:
        """Interrupt the server (it shuts its kernels down), then terminate, then kill."""
        if self.process.poll() is None:
            for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, sig)
                    if sig == signal.SIGINT:  # Jupyter asks for confirmation on the first ^C
                        time.sleep(0.3)
                        os.killpg(self.process.pid, sig)
                try:
                    self.process.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        shutil.rmtree(self.home, ignore_errors=True)


def _environment(home: Path, env: Mapping[str, str] | None) -> dict[str, str]:
    environment = dict(os.environ)
    for name, folder in (
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("IPYTHONDIR", "ipython"),
    ):
        (home / folder).mkdir(parents=True, exist_ok=True)
        environment[name] = str(home / folder)
    environment["JUPYTER_PLATFORM_DIRS"] = "1"
    environment["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), environment.get("PYTHONPATH", "")) if p)
    environment["PATH"] = os.pathsep.join((str(BIN), environment.get("PATH", "")))
    environment.pop("JPY_SESSION_NAME", None)
    environment.update(env or {})
    return environment


def _launch(
    kind: str,
    args: list[str],
    root: Path,
    env: Mapping[str, str] | None,
    port: int,
    token: str,
    single_notebook: str | None,
    timeout: float,
    home: Path,
) -> NotebookServer:
    log_path = home / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            args,
            cwd=root,
            env=_environment(home, env),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = NotebookServer(kind, port, token, root, process, log_path, home, single_notebook)
    server.wait_ready(timeout)
    return server


def start_voila(
    notebook: Path,
    *,
    serve_folder: bool = False,
    env: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
    timeout: float = 60.0,
) -> NotebookServer:
    """Start ``voila`` on ``notebook`` (or on its folder when ``serve_folder``).

    The command line is the one ``imaging-lab dashboard`` runs, less its raised websocket
    limit. The kernel runs with this interpreter's environment, the repository on
    ``PYTHONPATH`` and ``env`` added.
    """
    notebook = Path(notebook).resolve()
    root = notebook.parent if notebook.is_file() else notebook
    port, token = free_port(), secrets.token_hex(16)
    from imaging_lib.dashboard.server import TOKEN_ENV, voila_argv  # the command line `imaging-lab dashboard` runs

    target = [] if serve_folder or notebook.is_dir() else [notebook.name]
    argv = voila_argv(root / target[0] if target else root, port=port, ip="127.0.0.1")
    args = [
        *argv,
        f"--Voila.root_dir={root}",
        "--show_tracebacks=True",
        *extra_args,
    ]
    home = Path(tempfile.mkdtemp(prefix="imaging-voila-"))
    env = {**(env or {}), TOKEN_ENV: token}  # the token travels in the environment, never in argv
    return _launch("voila", args, root, env, port, token, target[0] if target else None, timeout, home)


def _start_jupyter_app(
    kind: str, root: Path, env: Mapping[str, str] | None, extra_args: Sequence[str], timeout: float
) -> NotebookServer:
    """Start ``jupyter lab`` (``kind="lab"``) or ``jupyter notebook`` (Notebook 7) with stock settings."""
    root = Path(root).resolve()
    port, token = free_port(), secrets.token_hex(16)
    home = Path(tempfile.mkdtemp(prefix=f"imaging-{kind}-"))
    app = "LabApp" if kind == "lab" else "JupyterNotebookApp"
    args = [
        str(BIN / "jupyter"),
        kind,
        "--no-browser",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.ip=127.0.0.1",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        f"--{app}.expose_app_in_browser=True",
        f"--{app}.user_settings_dir={home / 'user-settings'}",
        f"--{app}.workspaces_dir={home / 'workspaces'}",
        *(
            ["--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
            if kind == "lab"
            else []
        ),
        *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
        *extra_args,
    ]
    return _launch(kind, args, root, env, port, token, None, timeout, home)


def start_jupyterlab(
    root: Path,
    *,
    env: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
    timeout: float = 90.0,
) -> NotebookServer:
    """Start JupyterLab serving ``root``, with ``window.jupyterapp`` exposed for tests."""
    return _start_jupyter_app("lab", root, env, extra_args, timeout)


def start_notebook7(
    root: Path,
    *,
    env: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
    timeout: float = 90.0,
) -> NotebookServer:
    """Start Notebook 7 (``jupyter notebook``) serving ``root``, with ``window.jupyterapp`` exposed."""
    return _start_jupyter_app("notebook", root, env, extra_args, timeout)


@contextlib.contextmanager
def voila_server(notebook: Path, **kwargs) -> Iterator[NotebookServer]:
    """Context manager around :func:`start_voila`."""
    server = start_voila(notebook, **kwargs)
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def jupyterlab_server(root: Path, **kwargs) -> Iterator[NotebookServer]:
    """Context manager around :func:`start_jupyterlab`."""
    server = start_jupyterlab(root, **kwargs)
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def notebook7_server(root: Path, **kwargs) -> Iterator[NotebookServer]:
    """Context manager around :func:`start_notebook7`."""
    server = start_notebook7(root, **kwargs)
    try:
        yield server
    finally:
        server.stop()
