"""Bounded decompression of gzip and deflate streams held in memory.

:class:`BoundedInflater` inflates a stream a chunk at a time and only as far as its
caller asks: a reader inflates the header first, learns from it how many bytes the
image declares, and then inflates exactly that many. Every step is checked against
``limit`` as the bytes arrive, so a stream that would inflate to gigabytes costs no
more than the limit (and usually a few MiB) before :class:`~imaging_lib.errors.ImageTooLarge`
names the file. Used for ``.nii.gz`` volumes and the Deflated Explicit VR Little Endian
DICOM transfer syntax.
"""

from __future__ import annotations

import zlib

from ..errors import ImageTooLarge, UnreadableImage
from ..limits import INFLATE_CHUNK_BYTES

__all__ = ["GZIP", "RAW_DEFLATE", "BoundedInflater"]

GZIP = 16 + zlib.MAX_WBITS
"""``wbits`` of a gzip stream (members may follow one another, as ``gzip`` allows)."""
RAW_DEFLATE = -zlib.MAX_WBITS
"""``wbits`` of a raw deflate stream without header or trailer (DICOM's deflated syntax)."""

_INPUT_STEP = 256 * 1024


class BoundedInflater:
    """Inflate a compressed stream in steps, never past ``limit`` bytes of output.

    Parameters
    ----------
    data : bytes-like
        The compressed stream (not copied).
    wbits : int
        :data:`GZIP` or :data:`RAW_DEFLATE`.
    source : str
        Name used in error messages.
    limit : int
        Most bytes the stream may inflate to.
    what : str
        What the stream is, for error messages (``"gzip stream"``).
    """

    def __init__(self, data: bytes | bytearray | memoryview, *, wbits: int, source: str, limit: int, what: str) -> None:
        self._input = memoryview(data).cast("B")
        self._position = 0
        self._tail: bytes | memoryview = b""
        self._wbits = wbits
        self._decompressor = zlib.decompressobj(wbits)
        self.source = source
        self.limit = limit
        self.what = what
        self.output = bytearray()
        self.finished = False

    def __repr__(self) -> str:
        return f"BoundedInflater({self.source!r}, {len(self.output)} bytes out, limit {self.limit})"

    def inflate_to(self, size: int) -> bytearray:
        """Inflate until :attr:`output` holds ``size`` bytes or the stream ends; return :attr:`output`.

        Raises
        ------
        ImageTooLarge
            If ``size`` is over the limit.
        UnreadableImage
            If the stream is corrupt.
        """
        if size > self.limit:
            raise ImageTooLarge(
                self.source, f"{self.what} would inflate to {size} bytes, over the limit of {self.limit}"
            )
        while len(self.output) < size and not self.finished:
            self._step(min(size - len(self.output), INFLATE_CHUNK_BYTES))
        return self.output

    def ends_within(self, slack: int) -> bool:
        """Whether the stream ends (and checks) within ``slack`` more bytes of output.

        Inflates at most ``slack + 1`` more bytes (and never past the limit), so a stream
        whose tail would inflate to gigabytes is found out at the cost of ``slack``.
        """
        target = min(len(self.output) + slack + 1, self.limit + 1)
        while len(self.output) < target and not self.finished:
            self._step(target - len(self.output))
        return self.finished and len(self.output) < target

    def _step(self, room: int) -> None:
        try:
            if not self._tail:
                if self._decompressor.eof:
                    self._next_member()
                    if self.finished:
                        return
                if self._position >= len(self._input):
                    self._end_of_input()
                    return
                self._tail = self._input[self._position : self._position + _INPUT_STEP]
                self._position += len(self._tail)
            produced = self._decompressor.decompress(self._tail, room)
            self._tail = self._decompressor.unconsumed_tail
            if self._decompressor.eof and self._decompressor.unused_data:
                self._position -= len(self._decompressor.unused_data)
                self._tail = b""
        except zlib.error as exc:
            raise UnreadableImage(self.source, f"truncated or corrupt {self.what} ({exc})") from None
        self.output += produced
        if self._decompressor.eof and not self._tail:
            self._next_member()

    def _next_member(self) -> None:
        """After one stream ends: gzip goes on with the next member if one follows, else done."""
        rest = self._input[self._position :]
        if self._wbits == GZIP and len(rest) >= 2 and rest[:2] == b"\x1f\x8b":
            self._decompressor = zlib.decompressobj(self._wbits)
            return
        self.finished = True

    def _end_of_input(self) -> None:
        if not self._decompressor.eof:
            raise UnreadableImage(self.source, f"truncated or corrupt {self.what} (the stream ends early)")
        self.finished = True
