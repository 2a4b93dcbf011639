"""A tiny local HTTP server that answers from a script: slow, truncated, 4xx and 5xx answers on cue.

Orthanc answers correctly; archives in the wild time out, fail with 503 and cut bodies
short. :class:`ScriptedServer` (a ``ThreadingHTTPServer`` on 127.0.0.1, in a thread of
the test process) answers each request with the next :class:`Answer` of its script (the
last one repeats) and keeps every request it received, with its headers and body.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["Answer", "Received", "ScriptedServer", "multipart", "stow_answer"]


@dataclass(frozen=True)
class Answer:
    """One scripted answer.

    Attributes
    ----------
    status : int
    body : bytes
    content_type : str
    delay : float
        Seconds to wait before answering (a slow archive).
    declared_length : int, optional
        Content-Length to announce instead of the body's (larger: the connection closes early).
    headers : dict
        More headers (``Retry-After``...).
    """

    status: int = 200
    body: bytes = b""
    content_type: str = "application/dicom+json"
    delay: float = 0.0
    declared_length: int | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Received:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


def stow_answer(sop_class_uid: str, sop_uid: str, *, failed: bool = False) -> bytes:
    """A STOW-RS answer (DICOM JSON) naming one instance as stored, or as failed."""
    item = {"00081150": {"vr": "UI", "Value": [sop_class_uid]}, "00081155": {"vr": "UI", "Value": [sop_uid]}}
    if failed:
        item["00081197"] = {"vr": "US", "Value": [0xA700]}
        return json.dumps({"00081198": {"vr": "SQ", "Value": [item]}}).encode()
    return json.dumps({"00081199": {"vr": "SQ", "Value": [item]}}).encode()


def multipart(parts: Sequence[bytes], boundary: str = "imaging-lab-boundary", *, close: bool = True) -> bytes:
    """A ``multipart/related`` body of ``application/dicom`` parts (without the closing boundary if not ``close``)."""
    body = b"".join(
        b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + part + b"\r\n" for part in parts
    )
    return body + (b"--" + boundary.encode() + b"--\r\n" if close else b"")


class ScriptedServer:
    """An HTTP server on 127.0.0.1 answering from a script (use it as a context manager)."""

    def __init__(self, *answers: Answer) -> None:
        self.script = list(answers) or [Answer()]
        self.received: list[Received] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                """Quiet."""

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _answer(self) -> None:
                received = Received(self.command, self.path, dict(self.headers), self._body())
                answer = owner.next_answer(received)
                time.sleep(answer.delay)
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                length = answer.declared_length if answer.declared_length is not None else len(answer.body)
                self.send_header("Content-Length", str(length))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                if answer.declared_length is not None:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                try:
                    self.wfile.write(answer.body)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
                    self.close_connection = True

            do_GET = do_POST = _answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def next_answer(self, received: Received) -> Answer:
        with self._lock:
            self.received.append(received)
            return self.script[min(len(self.received), len(self.script)) - 1]

    @property
    def url(self) -> str:
        """``dicomweb+http://127.0.0.1:<port>/dicom-web``."""
        return f"dicomweb+http://127.0.0.1:{self.httpd.server_address[1]}/dicom-web"

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=10)
