"""Split a ``multipart/related`` body (a WADO-RS answer) into its parts, strictly and a part at a time.

:func:`iter_multipart` reads the body as it streams in and yields each part's content as
soon as the delimiter after it has arrived, so a series of 500 instances never sits in
memory as one body: at most one part (and one network chunk) does. It is strict where a
lenient parser would store half a series without noticing:

* the body must end with its closing boundary (``--boundary--``): a body cut short is
  :class:`~imaging_lib.errors.ArchiveResponseInvalid`, never a short last part;
* every part must have its header block (a blank line after its headers);
* one part may hold at most ``max_part_bytes``, a body at most ``max_parts`` parts and
  ``max_total_bytes`` bytes (:mod:`imaging_lib.limits`), each checked as bytes arrive.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from email.message import Message

from ..errors import ArchiveResponseInvalid
from ..limits import MAX_FILE_BYTES, MAX_SERIES_INSTANCES, MAX_SERIES_RETRIEVE_BYTES

__all__ = ["PART_HEADER_BYTES", "iter_multipart", "multipart_boundary", "split_multipart"]

PART_HEADER_BYTES = 64 * 1024
"""Most bytes of headers one part may carry before its content."""

_SEPARATOR = b"\r\n\r\n"


def multipart_boundary(content_type: str, source: str) -> bytes:
    """The boundary of a ``multipart/related`` Content-Type header.

    Raises
    ------
    ArchiveResponseInvalid
        If the media type is not ``multipart/related`` or there is no boundary.
    """
    message = Message()
    message["content-type"] = content_type
    params = {str(k).lower(): str(v) for k, v in (message.get_params() or [])[1:]}
    media = message.get_content_type()
    boundary = params.get("boundary", "").encode("latin-1")
    if media != "multipart/related" or not boundary:
        raise ArchiveResponseInvalid(source, f"expected a multipart/related body with a boundary, got {media!r}")
    return boundary


_CLOSE, _NEXT_PART, _NOT_A_DELIMITER = "close", "next part", "not a delimiter"


def _delimiter_end(buffer: bytearray, end: int) -> str | None:
    """What follows a boundary ending at ``end``: the close (``--``), a line end (optionally
    after spaces: the next part), anything else (not a delimiter); None until enough arrived."""
    if buffer[end : end + 2] == b"--":
        return _CLOSE
    position = end
    while position < len(buffer) and buffer[position] in b" \t":
        position += 1
    if len(buffer) < position + 2:
        return None
    return _NEXT_PART if buffer[position : position + 2] == b"\r\n" else _NOT_A_DELIMITER


def _content(buffer: bytearray, end: int, source: str) -> bytes:
    """The content of the part held in ``buffer[:end]`` (its headers dropped), copied once."""
    separator = buffer.find(_SEPARATOR, 0, min(end, PART_HEADER_BYTES + len(_SEPARATOR)))
    if separator < 0:
        raise ArchiveResponseInvalid(source, "a multipart part has no blank line after its headers")
    return bytes(buffer[separator + len(_SEPARATOR) : end])


def iter_multipart(
    chunks: Iterable[bytes],
    content_type: str,
    source: str,
    *,
    max_part_bytes: int = MAX_FILE_BYTES,
    max_parts: int = MAX_SERIES_INSTANCES,
    max_total_bytes: int = MAX_SERIES_RETRIEVE_BYTES,
) -> Iterator[bytes]:
    """Yield the content of each part of a ``multipart/related`` body as it streams in.

    Parameters
    ----------
    chunks : iterable of bytes
        The body, in pieces of any size (``response.iter_content(...)``, or ``[body]``).
    content_type : str
        The Content-Type header, with its ``boundary`` parameter.
    source : str
        Named in errors (an archive's bare address, never with credentials).
    max_part_bytes, max_parts, max_total_bytes : int
        Bounds on one part, on the number of parts and on the whole body.

    Yields
    ------
    bytes
        Each part's content, in order.

    Raises
    ------
    ArchiveResponseInvalid
        If the body is not multipart, ends before its closing boundary (truncated), has a
        part without its header block, or crosses a bound.
    """
    delimiter = b"\r\n--" + multipart_boundary(content_type, source)
    buffer = bytearray(b"\r\n")  # so a delimiter at the very start of the body is found
    search_from, received, parts = 0, 0, -1  # parts -1: still in the preamble
    for chunk in chunks:
        received += len(chunk)
        if received > max_total_bytes:
            raise ArchiveResponseInvalid(source, f"the multipart body exceeds the limit of {max_total_bytes} bytes")
        buffer += chunk
        while True:
            found = buffer.find(delimiter, search_from)
            end = found + len(delimiter)
            ending = _delimiter_end(buffer, end) if found >= 0 else None
            if ending is None:  # no delimiter yet, or not yet what follows it
                search_from = found if found >= 0 else max(0, len(buffer) - len(delimiter) - 1)
                if len(buffer) > max_part_bytes + PART_HEADER_BYTES:
                    raise ArchiveResponseInvalid(
                        source, f"a multipart part exceeds the limit of {max_part_bytes} bytes"
                    )
                break
            if ending == _NOT_A_DELIMITER:  # the boundary followed by other text: content
                search_from = found + 1
                continue
            if parts >= 0:
                if parts >= max_parts:
                    raise ArchiveResponseInvalid(source, f"the multipart body holds more than {max_parts} parts")
                yield _content(buffer, found, source)
            parts += 1
            if ending == _CLOSE:
                return  # the closing boundary: whatever follows is the epilogue
            del buffer[:end]
            search_from = 0
    raise ArchiveResponseInvalid(
        source, f"multipart body of {received} bytes ends before its closing boundary (truncated)"
    )


def split_multipart(body: bytes, content_type: str, source: str) -> list[bytes]:
    """Every part of a whole ``multipart/related`` body (see :func:`iter_multipart`).

    Raises
    ------
    ArchiveResponseInvalid
        As :func:`iter_multipart`.
    """
    return list(iter_multipart((body,), content_type, source, max_total_bytes=max(len(body), 1)))
