"""SegmentPanel: click in a PapayaViewer to segment there on Dask; the mask and its numbers come back.

A click in the viewer submits :func:`imaging_lib.science.segment.segment_and_quantify` (region
growing from the clicked voxel, quantification and, with a store, saving) to a Dask
client and returns at once: the kernel stays responsive while a worker computes. The
viewer shows its busy spinner meanwhile. When the future finishes, its done-callback
(which Dask runs in a thread of its own) schedules the screen update on the kernel's
event loop, where widgets may be touched safely; the mask then appears as an overlay
and the quantification as a table under the viewer.

A second click while a segmentation is still pending or running **cancels** the first
(``Future.cancel``) and starts one from the new seed: the last click always wins. A
task a worker has already started cannot be interrupted; its result is dropped and
never shown.
"""

from __future__ import annotations

import asyncio
import html
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

import ipywidgets

from imaging_lib.errors import ImagingError
from imaging_lib.identity import can, require
from imaging_lib.science.segment import segment_and_quantify
from imaging_lib.store.records import current_user
from imaging_lib.volume import Volume

from .papaya import PapayaViewer

__all__ = ["OVERLAY_NAME", "SegmentPanel", "quantification_html"]

#: Name of the overlay the panel draws (and replaces) in the viewer.
OVERLAY_NAME = "segmentation"
#: The status of a panel whose user may not save segmentations (clicks are refused).
READ_ONLY_MESSAGE = "Saving segmentations needs the researcher, reviewer or admin role: clicks do nothing here."


def _number(value: Any, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def quantification_html(quantification: dict[str, Any], seed_ijk: Sequence[int], seg_id: str | None = None) -> str:
    """An HTML table of the main numbers of a :func:`imaging_lib.science.segment.quantify` result.

    The volume cell carries the class ``segment-volume-ml`` and its exact value in
    ``data-value``, so pages and tests can read it.
    """
    q = quantification
    units = f" {html.escape(q['units'])}" if q.get("units") else ""
    rows = [
        ("Volume", f'<span class="segment-volume-ml" data-value="{q["volume_ml"]!r}">{q["volume_ml"]:.2f}</span> mL'),
        ("Voxels", f"{q['voxel_count']:,}"),
        ("Mean ± SD", f"{_number(q['intensity_mean'])} ± {_number(q['intensity_std'])}{units}"),
        ("Min / max", f"{_number(q['intensity_min'])} / {_number(q['intensity_max'])}{units}"),
        (
            "Median (P25–P75)",
            f"{_number(q.get('intensity_p50'))} ({_number(q.get('intensity_p25'))}–{_number(q.get('intensity_p75'))})",
        ),
        ("Centroid (mm)", ", ".join(_number(q.get(f"centroid_{a}_mm")) for a in "xyz")),
        ("Components", str(q["components"])),
        ("Seed (voxel)", ", ".join(str(int(v)) for v in seed_ijk)),
    ]
    if seg_id:
        rows.append(("Saved as", html.escape(seg_id)))
    body = "".join(
        f"<tr><th style='text-align:left;padding-right:1em'>{name}</th><td>{value}</td></tr>" for name, value in rows
    )
    return f"<table class='segment-quantification'>{body}</table>"


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread (the kernel's, inside a notebook), if any."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class SegmentPanel(ipywidgets.VBox):
    """A viewer whose clicks segment the image on Dask, with the numbers under it.

    Parameters
    ----------
    viewer : widgets.PapayaViewer
        The viewer to listen to and draw the mask in.
    volume : Volume, optional
        The image to segment, on the viewer's grid; defaults to the viewer's image.
    client : distributed.Client, optional
        Where to run; default :func:`imaging_lib.jobs.get_client` (a local cluster, or
        ``$IMAGING_DASK_SCHEDULER``), started at the first click.
    store : imaging_lib.store.Store, optional
        If given with ``study_uid``, every mask and its record are saved there.
    study_uid : str, optional
        The study the masks belong to.
    params : dict, optional
        Keyword arguments of :func:`imaging_lib.science.segment.grow_region`.

    Attributes
    ----------
    state : str
        ``"idle"``, ``"running"``, ``"done"`` or ``"failed"``.
    result : dict or None
        The last finished result: ``mask``, ``quantification``, ``record``.
    error : str
        The last failure's message (``""`` after a success).
    history : list of dict
        Every ``submitted``, ``cancelled``, ``done`` and ``failed`` event with its seed.

    Raises
    ------
    ValueError
        If there is no volume to segment.

    Notes
    -----
    Build the panel in a notebook cell (or a Voilà app): the kernel's running event loop
    is captured then and results are shown from it. Outside a kernel (a script) results
    are shown from Dask's callback thread. In a notebook cell wait with
    ``await panel.wait_async()``; :meth:`wait` would block the very loop that shows the
    result.
    """

    def __init__(
        self,
        viewer: PapayaViewer,
        volume: Volume | None = None,
        client: Any = None,
        store: Any = None,
        study_uid: str | None = None,
        *,
        params: dict[str, Any] | None = None,
    ) -> None:
        volume = volume if volume is not None else viewer.volume
        if volume is None:
            raise ValueError("give a volume, or show one in the viewer first")
        if viewer.volume is None:
            viewer.show(volume)
        self.viewer = viewer
        self.volume = volume
        self.store = store
        self.study_uid = study_uid
        self.params = dict(params or {})
        self.state = "idle"
        self.result: dict[str, Any] | None = None
        self.error = ""
        self.history: list[dict[str, Any]] = []
        self._client = client
        self._scattered: Any = None
        self._future: Any = None
        self._seed: tuple[int, ...] | None = None
        self._loop = _running_loop()
        self._settled = threading.Event()
        self._settled.set()
        allowed = store is None or can("segment")
        self.status = ipywidgets.HTML(
            self._status_html("Click in the image to segment from that voxel." if allowed else READ_ONLY_MESSAGE)
        )
        self.table = ipywidgets.HTML("")
        side = ipywidgets.VBox([self.status, self.table], layout=ipywidgets.Layout(padding="0.5em 0"))
        super().__init__([viewer, side])
        viewer.on_click(self._on_click)

    # ------------------------------------------------------------------ running
    @property
    def client(self) -> Any:
        """The Dask client the panel submits to (created at first use)."""
        if self._client is None:
            from imaging_lib.jobs import get_client

            self._client = get_client()
        return self._client

    def _on_click(self, ijk: tuple[int, int, int], _world: Any, _value: Any) -> None:
        self.segment(ijk)

    def segment(self, seed_ijk: Sequence[int]) -> Any:
        """Segment from a seed voxel on Dask, as a click does; cancel a segmentation under way.

        Parameters
        ----------
        seed_ijk : sequence of int
            Voxel index of the viewer's image.

        Returns
        -------
        distributed.Future
            The submitted task.
        """
        if self.store is not None:
            require("segment")
        i, j, k = (int(v) for v in seed_ijk)
        seed = (i, j, k)
        previous, previous_seed = self._future, self._seed
        self._future = None  # the previous future's callback now finds itself superseded
        if previous is not None and not previous.done():
            previous.cancel()
            self._event("cancelled", previous_seed)
        if self._scattered is None:  # ship the image to the cluster once, not at every click
            self._scattered = self.client.scatter(self.volume, hash=False)
        future = self.client.submit(
            segment_and_quantify, self._scattered, seed, self.params, self.store, self.study_uid, current_user(),
            key=f"segment-{uuid.uuid4().hex}",
        )  # fmt: skip
        self._future, self._seed = future, seed
        self._settled.clear()
        self.state = "running"
        self._event("submitted", seed)
        with self.viewer.hold_sync():
            self.viewer.busy_message = f"Segmenting from voxel {seed}…"
            self.viewer.busy = True
        self.status.value = self._status_html(f"Segmenting from voxel {seed}…")
        future.add_done_callback(self._on_done)
        return future

    def _on_done(self, future: Any) -> None:
        """Dask's done-callback, in a thread of its own: fetch the outcome, show it on the kernel's loop."""
        if future is not self._future:
            return  # superseded by a later click: never fetched, never shown
        try:
            outcome: Any = future.result()
        except BaseException as exc:
            outcome = exc
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._show, future, outcome)
        else:
            self._show(future, outcome)

    def _show(self, future: Any, outcome: Any) -> None:
        """Show a finished segmentation's mask and numbers (or its error), unless superseded."""
        if future is not self._future:
            return
        try:
            if isinstance(outcome, BaseException):
                self._fail(outcome)
            else:
                self._succeed(outcome)
        finally:
            self.viewer.busy = False
            self._settled.set()

    def _succeed(self, outcome: dict[str, Any]) -> None:
        record = outcome.get("record") or {}
        self.viewer.add_overlay(outcome["mask"], lut="Red Overlay", alpha=0.5, name=OVERLAY_NAME)
        self.table.value = quantification_html(outcome["quantification"], self._seed or (), record.get("seg_id"))
        self.status.value = self._status_html(f"Segmented from voxel {self._seed}.")
        self.result, self.error, self.state = outcome, "", "done"
        self._event("done", self._seed, volume_ml=outcome["quantification"]["volume_ml"])

    def _fail(self, exc: BaseException) -> None:
        message = str(exc) if isinstance(exc, ImagingError) else f"{type(exc).__name__}: {exc}"
        if OVERLAY_NAME in (spec["name"] for spec in self.viewer.overlays):
            self.viewer.remove_overlay(OVERLAY_NAME)
        self.table.value = ""
        self.status.value = self._status_html(f"Segmentation from voxel {self._seed} failed: {message}", error=True)
        self.result, self.error, self.state = None, message, "failed"
        self._event("failed", self._seed, error=message)

    def _event(self, kind: str, seed: tuple[int, ...] | None, **details: Any) -> None:
        self.history.append({"event": kind, "seed": seed, "time": time.time(), **details})

    @staticmethod
    def _status_html(text: str, error: bool = False) -> str:
        colour = "#b00020" if error else "inherit"
        return f"<div class='segment-status' style='color:{colour}'>{html.escape(text)}</div>"

    # ------------------------------------------------------------------ waiting
    def wait(self, timeout: float | None = None) -> dict[str, Any] | None:
        """Block until the latest segmentation is shown (scripts and tests, not notebook cells).

        Returns
        -------
        dict or None
            :attr:`result` (None if it failed).

        Raises
        ------
        TimeoutError
            If it is not shown within ``timeout`` seconds.
        RuntimeError
            If called on the event loop that shows results (it would wait forever).
        """
        if self._loop is not None and _running_loop() is self._loop:
            raise RuntimeError("wait() would block the kernel's loop: use `await panel.wait_async()`")
        if not self._settled.wait(timeout):
            raise TimeoutError(f"segmentation not finished after {timeout} s")
        return self.result

    async def wait_async(self, timeout: float | None = None, poll: float = 0.05) -> dict[str, Any] | None:
        """Wait, without blocking the kernel, until the latest segmentation is shown.

        Raises
        ------
        TimeoutError
            If it is not shown within ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._settled.is_set():
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"segmentation not finished after {timeout} s")
            await asyncio.sleep(poll)
        return self.result
