"""Benchmark: brush strokes in the PapayaViewer's edit mode, in Voilà in Chromium, on a 512x512x200 mask.

One page of a stock Voilà server shows a 512x512x200 int16 volume (0.7 x 0.7 x 1.5 mm)
with an empty editable 512x512x200 mask in edit mode, brush 10 mm, 2D. Each stroke is 20
dabs' worth of pointer positions (a press and 19 moves, 3 voxels apart, 40 mm in all) on
rows of its own; for each one:

* the time from the end of the stroke (the page's mouseup, wall clock) to Python's mask
  updated (the kernel's ``on_edit`` callback after the patch is applied, wall clock; the
  page and the kernel run on this machine): ``edit_sync_ms`` is the median (target at
  most 150 ms);
* every websocket byte both ways from the press until the websocket is quiet after the
  sync (the patch, Python's confirmation, the kernel's status messages...) over the bytes
  of the changed voxels (one byte each in the uint8 mask): ``edit_bytes_over_changed``
  is the median (target at most 4).

Side by side: the page's own time from mouseup to the patch sent, and what sending the
whole mask instead would weigh (packed one bit per voxel, as a fetch sends it) over the
same changed bytes.

Run: ``.venv/bin/python bench/bench_edit.py [--repeats N]`` (under the CPU lock, on an idle machine).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_viewer import WebsocketCounter, jsonl, wait_until
from support_package import register_support_package

register_support_package()
from support.browser import chromium_context, collect_console  # noqa: E402
from support.papaya_page import main_canvas, viewer_js  # noqa: E402
from support.servers import voila_server, write_notebook  # noqa: E402

SHAPE = (512, 512, 200)
WAIT_S = 180.0
QUIET_S = 0.5
SELECTOR = ".bench-edit"

NOTEBOOK_CELL = f"""
import json, os, time
import numpy as np
import ipywidgets as W
from imaging_lib.volume import Volume
from widgets import PapayaViewer

shape = {SHAPE!r}
i, j, k = np.ogrid[:shape[0], :shape[1], :shape[2]]
volume = Volume((300 + 2 * (i % 50) + 3 * (j % 40) + (k % 20)).astype(np.int16), np.diag([0.7, 0.7, 1.5, 1.0]))
viewer = PapayaViewer(volume, layout=W.Layout(width="700px"))
viewer.add_class("bench-edit")
viewer.add_overlay(np.zeros(shape, np.uint8), lut="Red Overlay", alpha=1.0, name="mask", editable=True)
viewer.brush_mm = 10.0
viewer.edit("mask")
out = os.environ["BENCH_EDIT_OUT"]

def edited(name, tool, voxels):
    with open(out, "a") as handle:
        handle.write(json.dumps({{"python_ms": time.time() * 1000, "voxels": voxels, "tool": tool}}) + "\\n")

viewer.on_edit(edited)
viewer
"""

STROKE_TIMES_JS = """
() => {
  window.__strokes = [];
  const now = () => performance.timeOrigin + performance.now();
  window.addEventListener("mouseup", () => window.__strokes.push({ end: now() }), true);
  const masks = document.querySelector(".bench-edit").imagingPapaya.edit.masks;
  const send = masks.send.bind(masks);
  masks.send = (content, buffers) => {
    const last = window.__strokes[window.__strokes.length - 1];
    if (content.type === "patch" && last && !last.sent) {
      last.sent = now();
    }
    send(content, buffers);
  };
}
"""


def stroke(page: Any, row: int, moves: int = 19, step: int = 3) -> None:
    """Press on voxel (60, row, slice), move ``moves`` times ``step`` voxels along i, release."""
    centre = viewer_js(page, SELECTOR, "view.currentVoxel().ijk")
    points = [
        viewer_js(page, SELECTOR, "view.screenPointOf(arg)", [60 + step * n, row, centre[2]]) for n in range(moves + 1)
    ]
    page.mouse.move(points[0]["x"], points[0]["y"])
    page.mouse.down()
    for target in points[1:]:
        page.mouse.move(target["x"], target["y"])
    page.mouse.up()


def measure(page: Any, counter: WebsocketCounter, out: Path, repeats: int) -> list[dict]:
    """Stroke ``repeats`` times on rows of their own; time and bytes of each."""
    runs = []
    for attempt in range(repeats):
        counter.wait_quiet(page, QUIET_S, WAIT_S)
        received, sent = counter.received, counter.sent
        done = len(jsonl(out))
        stroke(page, row=80 + 40 * attempt)
        if not wait_until(page, lambda done=done: len(jsonl(out)) > done, WAIT_S):
            raise SystemExit("Python never applied the stroke")
        counter.wait_quiet(page, QUIET_S, WAIT_S)
        record = jsonl(out)[-1]
        times = page.evaluate("() => window.__strokes[window.__strokes.length - 1]")
        run = {
            "sync_ms": record["python_ms"] - times["end"],
            "page_ms": times["sent"] - times["end"],
            "changed_bytes": record["voxels"],
            "websocket_bytes": (counter.received - received) + (counter.sent - sent),
        }
        runs.append(run)
        print(
            f"stroke {attempt + 1}: {run['changed_bytes']} voxels changed; end of stroke -> Python updated "
            f"{run['sync_ms']:.1f} ms (page: mouseup -> patch sent {run['page_ms']:.1f} ms); websocket "
            f"{run['websocket_bytes']} bytes both ways = {run['websocket_bytes'] / run['changed_bytes']:.2f} x changed"
        )
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="strokes measured (the median is reported)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-edit-") as temporary:
        folder = Path(temporary)
        out = folder / "edits.jsonl"
        notebook = write_notebook(folder / "bench.ipynb", [NOTEBOOK_CELL])
        with (
            voila_server(notebook, env={"BENCH_EDIT_OUT": str(out)}) as server,
            chromium_context(viewport=(1280, 1200)) as browser,
        ):
            page = browser.new_page()
            console = collect_console(page)
            counter = WebsocketCounter(page)
            started = time.monotonic()
            page.goto(server.url_for())
            try:
                page.wait_for_selector(f"{SELECTOR}[data-edit=on][data-edit-sync=synced]", timeout=WAIT_S * 1000)
            except Exception:
                print("\n".join(console[-30:]), server.log()[-3000:])
                raise
            print(f"volume and mask loaded and in edit mode after {time.monotonic() - started:.1f} s")
            main_canvas(page, SELECTOR).scroll_into_view_if_needed()
            page.evaluate(STROKE_TIMES_JS)
            stroke(page, row=40)  # a first stroke warms the page and the kernel up (not counted)
            wait_until(page, lambda: len(jsonl(out)) >= 1, WAIT_S)
            runs = measure(page, counter, out, args.repeats)
            page.close()
    mask_packed = SHAPE[0] * SHAPE[1] * SHAPE[2] / 8
    changed = statistics.median(run["changed_bytes"] for run in runs)
    print(f"edit_page_ms {statistics.median(run['page_ms'] for run in runs):.1f}")
    print(f"resend_over_changed {mask_packed / changed:.0f}")
    print(json.dumps({"strokes": len(runs), "median_changed_voxels": changed}))
    print(f"edit_sync_ms {statistics.median(run['sync_ms'] for run in runs):.1f}")
    print(f"edit_bytes_over_changed {statistics.median(r['websocket_bytes'] / r['changed_bytes'] for r in runs):.2f}")


if __name__ == "__main__":
    main()
