"""FileDrop's chunked upload protocol, played as the browser plays it.

The browser half (a real drop in Chromium on a stock Voilà server) is the upload test of
``tests/imaging_lib/dashboard/test_apps_browser.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from widgets.file_drop import CHUNK_BYTES, FileDrop


@pytest.fixture()
def drop():
    widget = FileDrop(max_bytes=64 * 1024**2)
    widget.sent = []
    widget.send = lambda content, buffers=None: widget.sent.append(content)
    widget.received = []
    widget.on_files(widget.received.append)
    return widget


def message(widget, content, buffers=()):
    widget._on_message(widget, content, list(buffers))


def upload(widget, files, upload_id="u1", chunk=CHUNK_BYTES):
    """Send ``files`` ({name: bytes}) in chunks of ``chunk`` bytes, as file_drop.js does."""
    names = list(files)
    message(widget, {"type": "start", "upload": upload_id, "names": names, "sizes": [len(files[n]) for n in names]})
    for index, name in enumerate(names):
        data = memoryview(files[name])
        for offset in range(0, len(data), chunk):
            message(
                widget,
                {"type": "chunk", "upload": upload_id, "file": index, "offset": offset},
                [data[offset : offset + chunk]],
            )
    message(widget, {"type": "done", "upload": upload_id})


def test_files_arrive_whole_from_chunks_under_the_websocket_limit(drop):
    rng = np.random.default_rng(0)
    files = {"a/1.dcm": rng.bytes(9 * 1024**2 + 17), "a/2.dcm": b"", "b.nii": rng.bytes(1000)}
    upload(drop, files)
    assert drop.received == [list(files.items())]
    acks = [m["received"] for m in drop.sent if m["type"] == "ack"]
    assert acks == sorted(acks) and acks[-1] == sum(len(v) for v in files.values())
    assert CHUNK_BYTES < 10 * 1024**2


@pytest.mark.parametrize(
    ("chunks", "reason"),
    [
        ([{"file": 0, "offset": 4}], "out of order"),
        ([{"file": 5, "offset": 0}], "unknown file"),
        ([{"file": 0, "offset": 0}, {"file": 0, "offset": 8}], "out of order or larger"),
    ],
)
def test_pieces_out_of_order_or_beyond_the_announced_size_are_refused(drop, chunks, reason):
    message(drop, {"type": "start", "upload": "u", "names": ["x.dcm"], "sizes": [10]})
    for chunk in chunks:
        message(drop, {"type": "chunk", "upload": "u", **chunk}, [b"12345678"])
    message(drop, {"type": "done", "upload": "u"})
    assert drop.received == []
    refusal = next(m for m in drop.sent if m["type"] == "refused")
    assert reason in refusal["reason"] and "Refused" in drop.status


def test_a_drop_over_the_limit_or_incomplete_is_refused(drop):
    message(drop, {"type": "start", "upload": "big", "names": ["x"], "sizes": [drop.max_bytes + 1]})
    assert drop.sent[-1]["type"] == "refused" and "exceed the upload limit" in drop.sent[-1]["reason"]
    message(drop, {"type": "start", "upload": "short", "names": ["x"], "sizes": [10]})
    message(drop, {"type": "chunk", "upload": "short", "file": 0, "offset": 0}, [b"12345"])
    message(drop, {"type": "done", "upload": "short"})
    assert drop.received == [] and "incomplete" in drop.sent[-1]["reason"]
    message(drop, {"type": "start", "upload": "odd", "names": ["x", 3], "sizes": [1, 1]})
    assert "malformed" in drop.sent[-1]["reason"]
    message(drop, {"type": "start", "upload": "huge", "names": ["x"], "sizes": [1]})
    message(drop, {"type": "chunk", "upload": "huge", "file": 0, "offset": 0}, [b"x" * (CHUNK_BYTES + 1)])
    assert drop.sent[-1]["type"] == "refused"
