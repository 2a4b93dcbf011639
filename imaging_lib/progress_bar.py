"""Progress bars that redraw in a terminal or a notebook, and write one line to a log file.

tqdm redraws its bar with ``\\r`` several times a second. In a terminal that is a bar;
in a log file (``make demo > demo.log``, a service's journal) it is dozens of copies of
the bar on one line. :func:`progress_bar` gives tqdm's usual bar (a widget in a
notebook, through ``tqdm.auto``) when it can redraw, and otherwise a bar that draws
nothing while it runs and writes its final state once, as one line, when it closes.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

__all__ = ["progress_bar", "redraws"]


def redraws(stream: IO[str] | None) -> bool:
    """Whether a bar on ``stream`` (default stderr) is seen redrawn: a terminal, or a notebook's widget."""
    from tqdm.autonotebook import tqdm as chosen

    if chosen.__module__ == "tqdm.notebook":  # an IPython kernel: tqdm.auto draws a widget, not text
        return True
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


@contextmanager
def progress_bar(*, file: IO[str] | None = None, disable: bool = False, **options: Any) -> Iterator[Any]:
    """A ``tqdm.auto`` bar; on a stream that is not a terminal, one line with its final state instead.

    Update it with ``update()`` (or set ``n`` and call ``update(0)``), never ``refresh()``,
    which draws whatever the stream.

    Parameters
    ----------
    file : text stream, optional
        Where the bar goes; default stderr.
    disable : bool
        Draw nothing at all.
    **options
        tqdm's (``total``, ``unit``, ``desc``, ``initial``...).

    Yields
    ------
    tqdm.tqdm
    """
    from tqdm.auto import tqdm

    if disable or redraws(file):
        with tqdm(file=file, disable=disable, **options) as bar:
            yield bar
        return
    stream = sys.stderr if file is None else file
    silent = float("inf")  # nothing drawn while it runs (tqdm's own close draws nothing either)
    with tqdm(file=stream, mininterval=silent, delay=silent, **options) as bar:
        try:
            yield bar
        finally:
            stream.write(f"{bar}\n")
            stream.flush()
