"""Talk to a dashboard kernel over its websocket as a hand-written client would: forged messages for security tests.

A page's kernel is reached at ``<base>/api/kernels/<id>/channels`` with the page's cookies.
:class:`KernelSocket` sends Jupyter messages (JSON, the default websocket protocol) and
collects the replies; :meth:`KernelSocket.widget_states` asks the kernel for every
widget's state as the page's widget manager does (``jupyter.widget.control``), so a test
can find a control by its CSS classes and send it a message of its own making.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

__all__ = ["KernelSocket", "channels_url", "cookie_header", "model_with_class"]


def channels_url(http_base: str, kernel_id: str) -> str:
    """The websocket URL of a kernel under ``http_base`` (ending in ``/``)."""
    return "ws" + http_base[len("http") :] + f"api/kernels/{kernel_id}/channels?session_id={uuid.uuid4().hex}"


def cookie_header(session: Any) -> str:
    """A ``Cookie`` header with every cookie of a ``requests`` session."""
    return "; ".join(f"{cookie.name}={cookie.value}" for cookie in session.cookies)


def _decode(raw: str | bytes) -> dict:
    """A message of jupyter_server's JSON websocket protocol; binary ones carry buffers after the JSON."""
    if isinstance(raw, str):
        return json.loads(raw)
    count = int.from_bytes(raw[:4], "big")
    offsets = [int.from_bytes(raw[4 * (i + 1) : 4 * (i + 2)], "big") for i in range(count)]
    return json.loads(raw[offsets[0] : offsets[1]] if count > 1 else raw[offsets[0] :])


class KernelSocket:
    """An open kernel websocket."""

    def __init__(self, connection: WebSocketClientConnection) -> None:
        self.connection = connection
        self.session = uuid.uuid4().hex
        self.received: list[dict] = []

    @classmethod
    async def open(cls, url: str, headers: dict[str, str] | None = None) -> KernelSocket:
        """Connect (raises ``tornado.httpclient.HTTPClientError`` when refused)."""
        connection = await websocket_connect(HTTPRequest(url, headers=headers or {}), max_message_size=1 << 30)
        return cls(connection)

    async def send(self, msg_type: str, content: dict, channel: str = "shell", metadata: dict | None = None) -> str:
        """Send a message; return its id."""
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "msg_type": msg_type,
            "session": self.session,
            "username": "forger",
            "version": "5.3",
            "date": "2026-01-01T00:00:00Z",
        }
        message = {
            "header": header,
            "parent_header": {},
            "metadata": metadata or {},
            "content": content,
            "channel": channel,
        }
        await self.connection.write_message(json.dumps(message))
        return msg_id

    async def collect(self, seconds: float) -> list[dict]:
        """Every message received in the next ``seconds``."""
        deadline = time.monotonic() + seconds
        found = []
        while (left := deadline - time.monotonic()) > 0:
            try:
                raw = await asyncio.wait_for(self.connection.read_message(), left)
            except TimeoutError:
                break
            if raw is None:
                break
            found.append(_decode(raw))
        self.received.extend(found)
        return found

    async def reply_to(self, msg_id: str, timeout: float = 30.0) -> dict | None:
        """The first message whose parent is ``msg_id`` and is a reply (``*_reply`` or ``comm_msg``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in await self.collect(min(1.0, deadline - time.monotonic())):
                if message.get("parent_header", {}).get("msg_id") == msg_id and (
                    message["msg_type"].endswith("_reply") or message["msg_type"] == "comm_msg"
                ):
                    return message
        return None

    async def widget_states(self) -> dict[str, dict]:
        """Every widget's state, by model id, as the kernel tells the page's widget manager."""
        comm_id = uuid.uuid4().hex
        await self.send(
            "comm_open",
            {"comm_id": comm_id, "target_name": "jupyter.widget.control", "data": {}},
            metadata={"version": "1.0.0"},
        )
        request = await self.send("comm_msg", {"comm_id": comm_id, "data": {"method": "request_states"}})
        reply = await self.reply_to(request)
        assert reply is not None, "the kernel did not answer request_states"
        return {model_id: entry["state"] for model_id, entry in reply["content"]["data"]["states"].items()}

    async def click(self, model_id: str) -> None:
        """Send a button click to a widget, as the page does when it is pressed."""
        await self.send("comm_msg", {"comm_id": model_id, "data": {"method": "custom", "content": {"event": "click"}}})

    async def set_value(self, model_id: str, name: str, value: Any) -> None:
        """Send a state update to a widget, as the page does when a control changes."""
        await self.send(
            "comm_msg",
            {"comm_id": model_id, "data": {"method": "update", "state": {name: value}, "buffer_paths": []}},
        )

    def close(self) -> None:
        self.connection.close()


def model_with_class(states: dict[str, dict], css_class: str) -> str:
    """The model id of the one widget carrying ``css_class``."""
    found = [model_id for model_id, state in states.items() if css_class in state.get("_dom_classes", ())]
    assert len(found) == 1, (css_class, found)
    return found[0]
