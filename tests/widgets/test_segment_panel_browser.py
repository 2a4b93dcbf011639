"""Click to segment in real headless Chromium, served by Voilà, computed on a real Dask cluster.

A Voilà app shows the demo phantom in a PapayaViewer with a SegmentPanel. The test clicks
the centre of the phantom's sphere on the canvas, then waits for the viewer's busy state,
the red mask overlay and the reported volume, and checks the volume against the sphere's
analytic volume. The kernel reaches a ``dask scheduler`` + ``dask worker`` cluster through
``IMAGING_DASK_SCHEDULER``, as a deployed dashboard would.
"""

from __future__ import annotations

import pytest

from imaging_lib.phantoms import demo_phantom
from support.browser import assert_real_image, chromium_context, collect_console, colour_fraction, screenshot_pixels
from support.servers import voila_server, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LOAD_TIMEOUT_MS = 120_000
MASK_ON_BRIGHT = (255, 128, 128)  # the red mask at alpha 0.5 over the bright sphere
SELECTOR = ".segment-viewer"

APP_CELL = """
import ipywidgets as W
from imaging_lib.phantoms import demo_phantom
from imaging_lib.store.objects import Store
from widgets import PapayaViewer
from widgets.segment_panel import SegmentPanel

phantom = demo_phantom(supersample=1)
viewer = PapayaViewer(phantom.volume, layout=W.Layout(width="640px"))
viewer.add_class("segment-viewer")
viewer.goto(ijk=phantom.seed_ijk(0))  # show the sphere's middle slice
panel = SegmentPanel(viewer, store=Store(), study_uid="phantom", params={"tolerance": 3.0, "max_volume_ml": 100.0})
panel
"""

# Records every value the viewer's data-busy attribute takes, so a short busy spell is not missed.
WATCH_BUSY = """(selector) => {
  const el = document.querySelector(selector);
  window.busySeen = [el.dataset.busy];
  new MutationObserver(() => window.busySeen.push(el.dataset.busy))
    .observe(el, {attributes: true, attributeFilter: ["data-busy"]});
}"""


@pytest.fixture(scope="module")
def app(tmp_path_factory, dask_process_cluster):
    folder = tmp_path_factory.mktemp("segment-app")
    write_notebook(folder / "segment.ipynb", [APP_CELL])
    env = {"IMAGING_DASK_SCHEDULER": dask_process_cluster.scheduler_address, "IMAGING_STORE": str(folder / "store")}
    with voila_server(folder / "segment.ipynb", env=env) as server:
        yield server, folder / "store"


def test_click_in_the_phantom_shows_overlay_and_its_true_volume(app):
    server, store_folder = app
    phantom = demo_phantom(supersample=1)
    seed = phantom.seed_ijk(0)
    truth_ml = phantom.truth(0)["volume_ml"]
    with chromium_context(viewport=(1280, 1000)) as browser:
        page = browser.new_page()
        console = collect_console(page)
        try:
            page.goto(server.url_for("segment.ipynb"))
            page.wait_for_selector(
                f"{SELECTOR}[data-status=ready][data-voxel='{','.join(map(str, seed))}']", timeout=LOAD_TIMEOUT_MS
            )
            canvas = page.locator(f"{SELECTOR} canvas").first
            canvas.scroll_into_view_if_needed()
            before = screenshot_pixels(canvas)
            assert_real_image(before, min_levels=16)
            assert colour_fraction(before, MASK_ON_BRIGHT, tolerance=70, dominance=80) < 0.001

            page.evaluate(WATCH_BUSY, SELECTOR)
            point = page.evaluate(
                "([selector, ijk]) => document.querySelector(selector).imagingPapaya.screenPointOf(ijk)",
                [SELECTOR, list(seed)],
            )
            page.mouse.click(point["x"], point["y"])
            page.wait_for_selector(".segment-volume-ml", timeout=LOAD_TIMEOUT_MS)
            page.wait_for_selector(f"{SELECTOR}[data-overlays='1'][data-busy=false]", timeout=LOAD_TIMEOUT_MS)
            reported = float(page.locator(".segment-volume-ml").get_attribute("data-value"))
            shown = float(page.locator(".segment-volume-ml").inner_text())
            busy_seen = page.evaluate("window.busySeen")
            after = screenshot_pixels(canvas)
        except Exception:
            print("\n".join(console[-40:]), server.log()[-4000:])
            raise
        finally:
            page.close()

    assert reported == pytest.approx(truth_ml, rel=0.02), (reported, truth_ml)
    assert shown == pytest.approx(reported, abs=0.006)
    assert "true" in busy_seen and busy_seen[-1] == "false", busy_seen
    red = colour_fraction(after, MASK_ON_BRIGHT, tolerance=70, dominance=80)
    assert red > 0.01, f"the mask overlay covers only {red:.4f} of the canvas"
    saved = list((store_folder / "records" / "segmentations" / "phantom").glob("*.json"))
    assert len(saved) == 1, "the clicked segmentation is saved with its record"
