"""Benchmark: PapayaViewer showing a 256^3 int16 volume plus a mask, in Voilà in Chromium.

Measured in one run, on one page of a stock Voilà server:

* the time from the kernel's ``viewer.show(volume)`` (with ``add_overlay(mask)`` right
  after) until the browser reports that Papaya drew both, and the bytes the browser
  received over the websocket meanwhile divided by the raw voxel bytes (32 MiB + 16 MiB);
* side by side, the browser alone: the same NIfTI bytes, already in the page, loaded and
  drawn by a second viewer's own Papaya build (``view.rebuild``). ``viewer_over_browser``
  is the first time over this one: what the trip from Python costs (target at most 2.0);
* adding 5 masks one by one (each painted before the next is added): the websocket bytes
  over their raw bytes, ``overlay_add_bytes_ratio`` (target at most 1.05: every overlay
  travels once, and nothing else does).

The reference widget ipyniivue (the ``bench`` extra) is measured on the same page when it
is installed: the time from the kernel's ``load_volumes`` of the same volume and mask (as
uncompressed NIfTI bytes) until a screenshot poll of NiiVue's WebGL canvas shows both
drawn (grey image and the red mask), and the websocket bytes both ways. Without ipyniivue
the run says it was not compared.

Targets: under 2,000 ms, bytes ratio at most 1.05. Last line: ``viewer_256_ms <ms>``.

Run: ``.venv/bin/python bench/bench_viewer.py [--repeats N]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from support_package import register_support_package

register_support_package()
from support.browser import chromium_context, collect_console, colour_fraction, screenshot_pixels  # noqa: E402
from support.servers import voila_server, write_notebook  # noqa: E402

SIZE = 256
WAIT_S = 120.0  # bound of every wait: the bench always ends
QUIET_S = 1.0  # websocket silence that ends a run's byte count
NIIVUE_HEIGHT = 500

MASKS = 5

NOTEBOOK_CELL = f"""
import json, os, time
from pathlib import Path
import numpy as np
import ipywidgets as W
from imaging_lib.volume import Volume
from widgets import PapayaViewer

n = {SIZE}
x, y, z = np.ogrid[:n, :n, :n]
radius = np.sqrt((x - 128.0) ** 2 + (y - 118.0) ** 2 + (z - 128.0) ** 2)
volume = Volume((200 + 3 * (x % 64) + 2 * (y % 48) + np.where(radius < 90, 600, 0)).astype(np.int16), np.eye(4))
mask = (np.sqrt((x - 150.0) ** 2 + (y - 140.0) ** 2 + (z - 128.0) ** 2) < 20).astype(np.uint8)
raw_bytes = volume.array.nbytes + mask.nbytes
out = os.environ["BENCH_VIEWER_OUT"]
viewer = PapayaViewer(layout=W.Layout(width="700px"))
reference = PapayaViewer(layout=W.Layout(width="700px"))  # the browser-only run draws here
reference.add_class("bench-reference")
runs = []

def keep_reference_bytes():
    # the bytes the viewer sent, for the browser-only run (written after the timing)
    folder = Path(out).parent
    (folder / "reference_volume.nii").write_bytes(viewer._base.full.to_bytes())
    overlay = viewer._overlays[0]
    (folder / "reference_mask.nii").write_bytes(viewer._overlay_layers[overlay.layer_id].full.to_bytes())
    described = {{"spec": dict(viewer._volume), "axes": list(viewer._base.full.axes),
                  "settings": {{k: v for k, v in overlay.spec().items() if k != "id"}}}}
    (folder / "reference.json").write_text(json.dumps(described))

def painted(change):
    report = change["new"]
    if report.get("volume_id") != viewer._volume["id"] or not runs or "ms" in runs[-1]:
        return
    if len(report.get("overlays", [])) == runs[-1]["overlays"]:
        runs[-1]["ms"] = (time.perf_counter() - runs[-1]["start"]) * 1000
        runs[-1]["browser_load_ms"] = report.get("load_ms")
        if runs[-1]["overlays"] == 1:
            keep_reference_bytes()
        with open(out, "a") as handle:
            handle.write(json.dumps({{k: v for k, v in runs[-1].items() if k != "start"}}) + "\\n")

viewer.observe(painted, names="painted")

def fresh_volume(run):
    return volume.with_array(volume.array + np.int16(run))  # new voxels each run: nothing cached

def go(_):
    runs.append({{"start": time.perf_counter(), "raw_bytes": raw_bytes, "overlays": 1}})
    viewer.show(fresh_volume(len(runs)))
    viewer.add_overlay(mask, lut="Red Overlay", alpha=1.0)

def add_mask(_):
    shown = len(viewer._overlays)
    runs.append({{"start": time.perf_counter(), "raw_bytes": mask.nbytes, "overlays": shown + 1}})
    viewer.add_overlay(np.roll(mask, 12 * shown, axis=0), lut="Green Overlay", alpha=0.5, name=f"mask {{shown}}")

button = W.Button(description="show")
button.add_class("bench-show")
button.on_click(go)
add_button = W.Button(description="add a mask")
add_button.add_class("bench-add-mask")
add_button.on_click(add_mask)
W.VBox([W.HBox([button, add_button]), viewer, reference])
"""

# Appended when ipyniivue is installed; uses the first cell's names (volume, mask, out, ...).
NIIVUE_CELL = f"""
from ipyniivue import NiiVue
from imaging_lib.io.nifti import nifti_to_bytes

niivue_out = out + ".niivue"
niivue = NiiVue(height={NIIVUE_HEIGHT})
niivue.add_class("bench-niivue")
niivue_runs = []

def niivue_write(record):
    with open(niivue_out, "a") as handle:
        handle.write(json.dumps(record) + "\\n")

@niivue.on_image_loaded
def niivue_loaded(loaded):  # ipyniivue fires this once the browser sent the decoded volume back
    niivue_write({{"event": "image_loaded", "run": len(niivue_runs), "name": loaded.name, "wall": time.time()}})

def niivue_go(_):
    start = time.time()
    niivue_write({{"event": "start", "run": len(niivue_runs) + 1, "wall": start, "raw_bytes": raw_bytes}})
    niivue_runs.append(start)
    niivue.load_volumes([
        {{"data": nifti_to_bytes(fresh_volume(len(niivue_runs)), compress=False), "name": "bench_volume.nii"}},
        {{"data": nifti_to_bytes(Volume(mask, volume.affine), compress=False), "name": "bench_mask.nii",
          "colormap": "red", "cal_min": 0.0, "cal_max": 1.0, "opacity": 1.0}},
    ])

def niivue_clear(_):
    niivue.volumes = []

niivue_button = W.Button(description="show in NiiVue")
niivue_button.add_class("bench-niivue-show")
niivue_button.on_click(niivue_go)
niivue_clear_button = W.Button(description="clear NiiVue")
niivue_clear_button.add_class("bench-niivue-clear")
niivue_clear_button.on_click(niivue_clear)
W.VBox([W.HBox([niivue_button, niivue_clear_button]), niivue])
"""


class WebsocketCounter:
    """Bytes of every websocket frame the page received and sent, and when the last one passed."""

    def __init__(self, page: Any) -> None:
        self.received = 0
        self.sent = 0
        self.last_frame = time.monotonic()
        page.on("websocket", self._watch)

    def _watch(self, websocket: Any) -> None:
        websocket.on("framereceived", lambda payload: self._count("received", payload))
        websocket.on("framesent", lambda payload: self._count("sent", payload))

    def _count(self, direction: str, payload: str | bytes) -> None:
        setattr(self, direction, getattr(self, direction) + len(payload))
        self.last_frame = time.monotonic()

    def wait_quiet(self, page: Any, quiet_s: float, timeout_s: float) -> bool:
        """Wait until no frame passed for ``quiet_s`` seconds; False if that took over ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if time.monotonic() - self.last_frame >= quiet_s:
                return True
            page.wait_for_timeout(100)
        return False


def wait_until(page: Any, condition: Callable[[], Any], timeout_s: float, step_ms: float = 50) -> Any:
    """Poll ``condition`` (letting playwright's events run between polls) until it is truthy, or None."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        page.wait_for_timeout(step_ms)
    return None


def jsonl(path: Path) -> list[dict]:
    """The JSON records of a file the kernel appends to (none yet if it does not exist)."""
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def niivue_shows_volume_and_mask(pixels: np.ndarray) -> bool:
    """True when the canvas shows the grey test volume and the red mask over it."""
    red = colour_fraction(pixels, (255, 0, 0), tolerance=90, dominance=80)
    grey = pixels.astype(np.int16)
    greyish = (np.ptp(grey, axis=-1) < 12) & (grey.mean(axis=-1) > 40)
    return red > 1e-4 and greyish.mean() > 0.01


def screenshot_if_painted(canvas: Any) -> tuple[float, float] | None:
    """Screenshot NiiVue's canvas; when it shows the volume and mask, the wall times the shot began and ended.

    A screenshot waits for the browser's next frame, so while NiiVue keeps the page busy one
    shot can take seconds: the paint happened at the latest when the shot ended.
    """
    requested = time.time()
    if niivue_shows_volume_and_mask(screenshot_pixels(canvas)):
        return requested, time.time()
    return None


def measure_papaya(page: Any, counter: WebsocketCounter, out: Path, repeats: int, server: Any) -> list[dict]:
    """Click ``show`` ``repeats`` times; after each run, draw the same bytes browser-only on the same page."""
    runs = []
    for attempt in range(repeats):
        counter.wait_quiet(page, QUIET_S, WAIT_S)
        before = counter.received
        page.locator(".bench-show").click()
        if not wait_until(page, lambda: len(jsonl(out)) > attempt, 180):
            raise SystemExit(f"no paint report after 180 s:\n{server.log()[-3000:]}")
        page.wait_for_timeout(300)  # let the trailing small messages arrive
        run = jsonl(out)[attempt]
        run["websocket_bytes"] = counter.received - before
        run["browser_only_ms"] = measure_browser_only(page)
        runs.append(run)
        print(
            f"run {attempt + 1}: show->painted {run['ms']:.0f} ms (browser load+draw "
            f"{run['browser_load_ms']:.0f} ms; the same bytes browser-only {run['browser_only_ms']:.0f} ms), "
            f"websocket {run['websocket_bytes'] / 2**20:.2f} MiB for {run['raw_bytes'] / 2**20:.2f} MiB of voxels"
        )
    return runs


REFERENCE_JS = """
async () => {
  const view = document.querySelector(".bench-reference").imagingPapaya;
  const described = await (await fetch("bench-reference/reference.json")).json();
  const volume = await (await fetch("bench-reference/reference_volume.nii")).arrayBuffer();
  const mask = await (await fetch("bench-reference/reference_mask.nii")).arrayBuffer();
  await new Promise((resolve) => requestAnimationFrame(resolve));
  const started = performance.now();
  await view.rebuild(
    described.spec,
    { buffer: volume, axes: described.axes, stride: 1 },
    [{ settings: described.settings, buffer: mask }],
  );
  return performance.now() - started;
}
"""


def measure_browser_only(page: Any) -> float:
    """Load and draw the bytes of the last run, already in the page, in the reference viewer (ms)."""
    return float(page.evaluate(REFERENCE_JS))


def measure_overlay_adds(page: Any, counter: WebsocketCounter, out: Path, server: Any) -> float:
    """Add masks one by one, each painted before the next; websocket bytes over their raw bytes."""
    counter.wait_quiet(page, QUIET_S, WAIT_S)
    before, raw = counter.received, 0
    for _ in range(MASKS):
        done = len(jsonl(out))
        page.locator(".bench-add-mask").click()
        if not wait_until(page, lambda done=done: len(jsonl(out)) > done, 180):
            raise SystemExit(f"no paint report for an added mask after 180 s:\n{server.log()[-3000:]}")
        run = jsonl(out)[-1]
        raw += run["raw_bytes"]
        print(f"mask {run['overlays'] - 1}: add->painted {run['ms']:.0f} ms")
    counter.wait_quiet(page, QUIET_S, WAIT_S)
    return (counter.received - before) / raw


def measure_niivue(page: Any, counter: WebsocketCounter, out: Path, repeats: int) -> list[dict] | str:
    """Time ipyniivue's load of the same volume and mask to a painted canvas; a reason string if it cannot."""
    canvas = page.locator(".bench-niivue canvas").first
    try:
        canvas.wait_for(state="visible", timeout=WAIT_S * 1000)
    except Exception as error:  # playwright's TimeoutError
        return f"no NiiVue canvas appeared within {WAIT_S:.0f} s ({type(error).__name__})"
    webgl = page.evaluate(
        """() => { const gl = document.createElement('canvas').getContext('webgl2');
                   if (!gl) return null;
                   const info = gl.getExtension('WEBGL_debug_renderer_info');
                   return gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER); }"""
    )
    if webgl is None:
        return "this Chromium offers no WebGL2 context"
    print(f"ipyniivue: WebGL2 renderer {webgl}")
    runs = []
    for attempt in range(repeats):
        page.locator(".bench-niivue-clear").click()
        if not wait_until(page, lambda: not niivue_shows_volume_and_mask(screenshot_pixels(canvas)), WAIT_S):
            return f"NiiVue canvas still showed the previous volume {WAIT_S:.0f} s after clearing"
        counter.wait_quiet(page, QUIET_S, WAIT_S)
        received, sent = counter.received, counter.sent
        page.locator(".bench-niivue-show").click()
        painted = wait_until(page, lambda: screenshot_if_painted(canvas), WAIT_S, 0)
        if not painted:
            return f"NiiVue did not draw the volume and mask within {WAIT_S:.0f} s (WebGL2: {webgl})"
        quiet = counter.wait_quiet(page, QUIET_S, WAIT_S)
        records = [r for r in jsonl(out) if r.get("run") == attempt + 1 and r["event"] == "start"]
        if not records:
            return "the kernel wrote no start record for the NiiVue run"
        start = records[0]
        loaded = [r["wall"] for r in jsonl(out) if r["event"] == "image_loaded" and r["run"] == attempt + 1]
        run = {
            "ms": (painted[1] - start["wall"]) * 1000,
            "poll_ms": (painted[1] - painted[0]) * 1000,
            "loaded_event_ms": (max(loaded) - start["wall"]) * 1000 if len(loaded) >= 2 else None,
            "raw_bytes": start["raw_bytes"],
            "received_bytes": counter.received - received,
            "sent_bytes": counter.sent - sent,
        }
        runs.append(run)
        loaded_text = f"{run['loaded_event_ms']:.0f} ms" if run["loaded_event_ms"] is not None else "not fired for both"
        print(
            f"ipyniivue run {attempt + 1}: load_volumes->painted {run['ms']:.0f} ms (the screenshot that saw "
            f"it took {run['poll_ms']:.0f} ms; Python image_loaded "
            f"event {loaded_text}), websocket to browser {run['received_bytes'] / 2**20:.2f} MiB, back to "
            f"Python {run['sent_bytes'] / 2**20:.2f} MiB{'' if quiet else ' (still busy after the wait)'}"
        )
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed shows (the median is reported)")
    args = parser.parse_args()

    compare = importlib.util.find_spec("ipyniivue") is not None
    with tempfile.TemporaryDirectory(prefix="bench-viewer-") as temporary:
        folder = Path(temporary)
        out = folder / "runs.jsonl"
        cells = [NOTEBOOK_CELL, NIIVUE_CELL] if compare else [NOTEBOOK_CELL]
        notebook = write_notebook(folder / "bench.ipynb", cells)
        with (
            voila_server(notebook, env={"BENCH_VIEWER_OUT": str(out)}) as server,
            chromium_context(viewport=(1280, 1800)) as browser,
        ):
            page = browser.new_page()
            console = collect_console(page)
            counter = WebsocketCounter(page)
            page.route(
                "**/bench-reference/*",
                lambda route: route.fulfill(body=(folder / route.request.url.rsplit("/", 1)[-1]).read_bytes()),
            )
            page.goto(server.url_for())
            page.wait_for_selector(".bench-show", timeout=WAIT_S * 1000)
            page.wait_for_selector(".bench-reference.imaging-papaya", state="attached", timeout=WAIT_S * 1000)
            runs = measure_papaya(page, counter, out, args.repeats, server)
            overlay_ratio = measure_overlay_adds(page, counter, out, server)
            niivue = measure_niivue(page, counter, Path(f"{out}.niivue"), args.repeats) if compare else None
            errors = [m for m in console if m.startswith(("error", "pageerror"))]
    median_ms = statistics.median(run["ms"] for run in runs)
    browser_only_ms = statistics.median(run["browser_only_ms"] for run in runs)
    ratio = statistics.median(run["websocket_bytes"] / run["raw_bytes"] for run in runs)
    print(f"viewer_browser_only_ms {browser_only_ms:.0f}")
    print(f"viewer_over_browser {median_ms / browser_only_ms:.2f}")
    print(f"overlay_add_bytes_ratio {overlay_ratio:.4f}")
    print(f"viewer_bytes_ratio {ratio:.4f}")
    if niivue is None:
        print("ipyniivue: not installed (not compared; install the bench extra: pip install -e '.[bench]')")
    elif isinstance(niivue, str):
        print(f"ipyniivue: not measured: {niivue}")
        for message in errors[-5:]:
            print(f"  browser {message[:300]}")
    else:
        niivue_ms = statistics.median(run["ms"] for run in niivue)
        print(f"ipyniivue_256_ms {niivue_ms:.0f}")
        print(f"ipyniivue_bytes_ratio {statistics.median(r['received_bytes'] / r['raw_bytes'] for r in niivue):.4f}")
        print(f"ipyniivue_bytes_back_ratio {statistics.median(r['sent_bytes'] / r['raw_bytes'] for r in niivue):.4f}")
        print(f"ipyniivue_over_ours_ms_ratio {niivue_ms / median_ms:.1f}")
    print(f"viewer_256_ms {median_ms:.0f}")


if __name__ == "__main__":
    main()
