"""The PapayaViewer's edit mode in real headless Chromium, served by real Voilà, JupyterLab and Notebook 7.

One notebook opens the real brain MR of a fresh store (ingested and predicted) in a
viewer with its :class:`~widgets.review_panel.ReviewPanel`; a text area shows Python's
copy of the label mask after every edit (its ones as flat NIfTI-order indices, its
SHA-256, its revision). The tests press the panel's "Edit label mask", set the brush with
the keyboard shortcuts, and stroke with the mouse:

* the voxels Python holds changed are exactly those under the brush (a ball of the
  brush's radius in mm around the stroke's path, cut to ±n slices), within one voxel of
  the radius, and the canvas shows them in the label's colour;
* undo restores the previous mask bit for bit (its SHA-256), redo brings the stroke back;
* the saved version reads back from the store identical to what the page drew;
* a patch from Python shows in the page; a stale patch is refused and the page resyncs;
* fill and interpolation come back from Python as undoable patches.

JupyterLab runs the stroke, undo and save checks (and its own shortcuts stay quiet),
Notebook 7 a smoke test: the viewer renders and a stroke syncs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from imaging_lib.science.slice_interpolation import interpolate_between_slices
from imaging_lib.store.catalog import Catalog
from imaging_lib.store.labels import latest_label, read_label_mask
from imaging_lib.store.masks import mask_sha256
from imaging_lib.store.objects import Store
from support.browser import assert_real_image, chromium_context, collect_console, screenshot_pixels
from support.papaya_page import LOAD_TIMEOUT_MS, main_canvas, run_all_cells, viewer_js
from support.reviewed import copy_store, predicted_brain_store
from support.servers import jupyterlab_server, notebook7_server, voila_server, write_notebook
from widgets.papaya_edit import FILL_PARAMS, fill_region

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
VIEWER = ".edit-viewer"
REVIEWER = "reviewer-browser"

EDIT_CELL = """
import json, os
import numpy as np
import ipywidgets as W
from imaging_lib.store.catalog import Catalog
from imaging_lib.store.masks import mask_sha256
from imaging_lib.store.objects import Store
from widgets import PapayaViewer
from widgets.review_panel import LABEL_OVERLAY, ReviewPanel

store = Store(os.environ["EDIT_STORE"])
uid = os.environ["EDIT_STUDY"]
volume = store.read_volume(Catalog(store).studies().set_index("study_uid").loc[uid, "volume_key"])
viewer = PapayaViewer(volume, layout=W.Layout(width="640px"))
viewer.add_class("edit-viewer")
panel = ReviewPanel(store, uid, viewer=viewer, user="reviewer-browser")
report = W.Textarea(layout=W.Layout(width="600px", height="60px"))
report.add_class("edit-report")

def show_mask(*_):
    model = viewer._overlay_model(LABEL_OVERLAY)
    mask = viewer.mask(LABEL_OVERLAY)
    report.value = json.dumps({
        "revision": viewer._overlay_layers[model.layer_id].revision,
        "ones": np.flatnonzero(mask.ravel(order="F")).tolist(),
        "sha256": mask_sha256(mask),
        "tools": viewer.edited_with(LABEL_OVERLAY),
    })

viewer.on_edit(show_mask)

def python_patch(_):
    viewer.patch_mask(LABEL_OVERLAY, np.arange(40, 60) + 256 * 30 + 256 * 256 * viewer.coordinate["ijk"][2], 1)
    show_mask()

patch_button = W.Button(description="python patch")
patch_button.add_class("python-patch")
patch_button.on_click(python_patch)
goto_text = W.Text()
goto_text.add_class("goto-ijk")
goto_button = W.Button(description="goto")
goto_button.add_class("goto-button")
goto_button.on_click(lambda _: viewer.goto(json.loads(goto_text.value)))
W.VBox([viewer, panel, W.HBox([patch_button, goto_text, goto_button]), report])
"""


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return predicted_brain_store(tmp_path_factory.mktemp("edit-source"))


def _served(source, folder: Path) -> tuple[Path, dict, Store, str]:
    store, uid = source
    copy = copy_store(store, Store(folder / "store"))
    notebooks = folder / "notebooks"
    write_notebook(notebooks / "edit.ipynb", [EDIT_CELL])
    return notebooks, {"EDIT_STORE": copy.url, "EDIT_STUDY": uid}, copy, uid


@pytest.fixture(scope="module")
def browser():
    """One Chromium for the module: playwright's sync API cannot run two at once."""
    with chromium_context() as context:
        yield context


@pytest.fixture(scope="module")
def voila_edit(source, browser, tmp_path_factory):
    notebooks, env, store, uid = _served(source, tmp_path_factory.mktemp("edit-voila"))
    with voila_server(notebooks, serve_folder=True, env=env) as server:
        page = browser.new_page()
        console = collect_console(page)
        page.goto(server.url_for("edit.ipynb"))
        try:
            open_editor(page)
        except Exception:
            print("\n".join(console[-40:]), server.log()[-4000:])
            raise
        yield page, store, uid
        page.close()


# ---------------------------------------------------------------------- page helpers
def open_editor(page) -> None:
    """Wait for the viewer, press "Edit label mask", wait for the edit mode."""
    page.wait_for_selector(f"{VIEWER}[data-status=ready]", timeout=LOAD_TIMEOUT_MS)
    page.locator(".review-panel button", has_text="Edit label mask").click()
    page.wait_for_selector(f"{VIEWER}[data-edit=on][data-edit-sync=synced]", timeout=LOAD_TIMEOUT_MS)
    main_canvas(page, VIEWER).scroll_into_view_if_needed()


def python_mask(page, after: int) -> dict:
    """Python's copy of the mask once its revision passed ``after`` (from the report text area)."""
    page.wait_for_function(
        "(after) => { const area = document.querySelector('.edit-report textarea');"
        " return area && area.value && JSON.parse(area.value).revision > after; }",
        arg=after,
    )
    return json.loads(page.locator(".edit-report textarea").input_value())


def page_ones(page) -> list[int]:
    """The flat indices of the voxels set in the page's mask (what Papaya draws)."""
    return viewer_js(
        page,
        VIEWER,
        "(() => { const v = view.edit.state.voxels; const out = [];"
        " for (let n = 0; n < v.length; n += 1) { if (v[n]) out.push(n); } return out; })()",
    )


def revision(page) -> int:
    return int(page.get_attribute(VIEWER, "data-edit-revision"))


def wait_synced(page, at_least: int) -> int:
    page.wait_for_function(
        "([selector, at]) => { const el = document.querySelector(selector);"
        " return el.dataset.editSync === 'synced' && Number(el.dataset.editRevision) >= at; }",
        arg=[VIEWER, at_least],
    )
    return revision(page)


def point(page, ijk) -> tuple[float, float]:
    """Where voxel ``ijk`` is on the screen (its centre's pixel), the viewer scrolled into view."""
    main_canvas(page, VIEWER).scroll_into_view_if_needed()
    found = viewer_js(page, VIEWER, "view.screenPointOf(arg)", [int(v) for v in ijk])
    return found["x"], found["y"]


def hover(page) -> None:
    """Put the pointer over the viewer: its shortcuts work while it is there."""
    main_canvas(page, VIEWER).scroll_into_view_if_needed()
    box = main_canvas(page, VIEWER).bounding_box()
    page.mouse.move(box["x"] + box["width"] / 3, box["y"] + box["height"] / 3)


def stroke(page, start, end, moves: int = 19) -> None:
    """Press on voxel ``start``, move in ``moves`` steps to ``end``, release: a stroke of 1 + moves dabs."""
    page.mouse.move(*point(page, start))
    page.mouse.down()
    x, y = point(page, end)
    page.mouse.move(x, y, steps=moves)
    page.mouse.up()


def pixel(pixels: np.ndarray, page, ijk) -> np.ndarray:
    box = main_canvas(page, VIEWER).bounding_box()
    x, y = point(page, ijk)
    return pixels[int(y - box["y"]), int(x - box["x"])].astype(int)


def swept(shape, spacing, axes: dict, start, end, radius: float, depth: int, slack: float) -> np.ndarray:
    """Voxels whose centres lie within ``radius + slack`` mm of the segment start-end, on ±depth slices."""
    spacing = np.asarray(spacing, dtype=np.float64)
    positions = np.indices(shape).reshape(3, -1).T * spacing
    a, b = np.asarray(start) * spacing, np.asarray(end) * spacing
    along = np.clip(((positions - a) @ (b - a)) / max(float((b - a) @ (b - a)), 1e-12), 0.0, 1.0)
    distance = np.linalg.norm(positions - (a + along[:, None] * (b - a)), axis=1)
    slab = np.abs(np.indices(shape)[axes["w"]].reshape(-1) - start[axes["w"]]) <= depth
    inside = (distance <= radius + slack) & slab
    return inside.reshape(shape).ravel(order="F")


# ---------------------------------------------------------------------- checks shared by the servers
def check_stroke(page, volume) -> dict:
    """Set a 3D brush with the shortcuts, stroke, and compare Python's mask with the brush's ball; returns it."""
    hover(page)
    for _ in range(6):
        page.keyboard.press("]")
    page.keyboard.press("}")
    brush_mm = viewer_js(page, VIEWER, "view.model.get('brush_mm')")
    assert brush_mm == pytest.approx(19.4) and viewer_js(page, VIEWER, "view.model.get('brush_depth')") == 1
    cursor = viewer_js(
        page,
        VIEWER,
        "(() => { const c = view.el.querySelector('.imaging-papaya-brush');"
        " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " let drawn = 0; for (let n = 3; n < d.length; n += 4) { drawn += d[n] > 0; }"
        " return [getComputedStyle(c).display, drawn]; })()",
    )
    assert cursor[0] == "block" and cursor[1] > 20, f"no brush outline under the pointer: {cursor}"

    axes = viewer_js(page, VIEWER, "view.edit.planeAxes()")
    centre = viewer_js(page, VIEWER, "view.currentVoxel().ijk")
    start, end = list(centre), list(centre)
    start[axes["u"]] -= 30
    end[axes["u"]] += 25
    end[axes["v"]] += 18
    page.mouse.move(2, 2)  # off the viewer: no brush outline over the pictures compared
    before = screenshot_pixels(main_canvas(page, VIEWER))
    at = revision(page)
    stroke(page, start, end)
    synced = wait_synced(page, at + 1)
    mask = python_mask(page, at)
    assert mask["revision"] == synced == at + 1 and mask["tools"] == ["brush"]
    changed = np.zeros(int(np.prod(volume.shape)), bool)
    changed[mask["ones"]] = True
    radius, slack = brush_mm / 2, max(volume.spacing[axes["u"]], volume.spacing[axes["v"]])
    must = swept(volume.shape, volume.spacing, axes, start, end, radius - slack, 1, 0.0)
    may = swept(volume.shape, volume.spacing, axes, start, end, radius + slack, 1, 0.0)
    assert not (must & ~changed).any(), f"{int((must & ~changed).sum())} voxels under the brush were not painted"
    assert not (changed & ~may).any(), f"{int((changed & ~may).sum())} voxels beyond the brush were painted"
    out_of_plane = np.indices(volume.shape)[axes["w"]].ravel(order="F")[changed]
    assert set(out_of_plane.tolist()) == {centre[axes["w"]] - 1, centre[axes["w"]], centre[axes["w"]] + 1}
    assert sorted(page_ones(page)) == mask["ones"], "Python's mask differs from what the page draws"

    page.mouse.move(2, 2)
    page.wait_for_timeout(300)  # the redraw waits for an animation frame
    after = screenshot_pixels(main_canvas(page, VIEWER))
    assert_real_image(after)
    middle = [(s + e) // 2 for s, e in zip(start, end, strict=True)]
    old, new = pixel(before, page, middle), pixel(after, page, middle)
    assert new[2] - new[0] > old[2] - old[0] + 40, f"the stroke is not drawn in the label's blue: {old} -> {new}"
    far = list(centre)
    far[axes["v"]] -= 40
    assert np.abs(pixel(after, page, far) - pixel(before, page, far)).max() <= 8
    return mask


def check_undo_redo(page, stroked: dict, shape) -> None:
    """Ctrl+Z restores the empty mask bit for bit; Ctrl+Shift+Z brings the stroke back."""
    hover(page)
    at = revision(page)
    page.keyboard.press("Control+z")
    undone = python_mask(page, at)
    assert undone["sha256"] == mask_sha256(np.zeros(shape, np.uint8)) and undone["ones"] == []
    assert page_ones(page) == [] and page.get_attribute(VIEWER, "data-edit-redo") == "1"
    page.keyboard.press("Control+Shift+z")
    redone = python_mask(page, at + 1)
    assert redone["sha256"] == stroked["sha256"] and redone["ones"] == stroked["ones"]
    wait_synced(page, at + 2)


def check_save(page, store: Store, uid: str, version: str) -> np.ndarray:
    """Save the edited mask; the version read back from the store is what the page draws."""
    page.locator(".review-panel button", has_text="Save edited mask").click()
    page.wait_for_selector(f".review-message[data-state=saved]:has-text('Saved {version}')", timeout=LOAD_TIMEOUT_MS)
    label = latest_label(store, uid)
    assert label["version"] == version and label["provenance"]["created_by"] == REVIEWER
    saved = read_label_mask(store, label).array
    np.testing.assert_array_equal(np.flatnonzero(saved.ravel(order="F")), page_ones(page))
    return saved


def brain(store: Store, uid: str):
    return store.read_volume(Catalog(store).studies().set_index("study_uid").loc[uid, "volume_key"])


# ---------------------------------------------------------------------- Voilà
def test_voila_a_stroke_changes_exactly_the_voxels_under_the_brush_undo_restores_and_the_save_reads_back(voila_edit):
    page, store, uid = voila_edit
    volume = brain(store, uid)
    stroked = check_stroke(page, volume)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    hover(page)
    page.mouse.move(*point(page, viewer_js(page, VIEWER, "view.currentVoxel().ijk")))
    page.locator(VIEWER).screenshot(path=str(SCREENSHOTS / "viewer-edit.png"))
    check_undo_redo(page, stroked, volume.shape)
    saved = check_save(page, store, uid, "v000001")
    assert latest_label(store, uid)["tool"] == "brush" and saved.sum() == len(stroked["ones"])


def test_voila_a_python_patch_is_drawn_and_a_stale_patch_is_refused_and_resynced(voila_edit):
    page, _store, _uid = voila_edit
    at = wait_synced(page, 0)
    page.locator(".python-patch button, button.python-patch").first.click()
    patched = python_mask(page, at)
    wait_synced(page, at + 1)
    assert sorted(page_ones(page)) == patched["ones"], "the page did not apply Python's patch"
    assert page.get_attribute(VIEWER, "data-edit-undo") != "0", "Python's patch leaves the page's history alone"

    # a page that missed a revision sends its stroke on the old one: Python refuses it, the page reloads
    viewer_js(
        page,
        VIEWER,
        "(() => { const s = view.edit.state; view.edit.masks.send({type: 'patch', layer: s.id,"
        " version: s.version, base: s.revision - 1, revision: s.revision, tool: 'brush', part: 0, parts: 1,"
        " runs: 1}, [new Uint32Array([0, 3]).buffer, new Uint8Array([1]).buffer]); })()",
    )
    page.wait_for_selector(f"{VIEWER} .imaging-papaya-edit-status:has-text('refused')")
    wait_synced(page, at + 1)
    assert sorted(page_ones(page)) == patched["ones"] and 0 not in page_ones(page)
    assert page.get_attribute(VIEWER, "data-edit-undo") == "0", "the history of another mask is dropped"


def test_voila_fill_and_interpolation_come_back_from_python_and_undo(voila_edit):
    page, store, uid = voila_edit
    volume = brain(store, uid)
    axes = viewer_js(page, VIEWER, "view.edit.planeAxes()")
    centre = viewer_js(page, VIEWER, "view.currentVoxel().ijk")
    at = wait_synced(page, 0)
    before = np.zeros(volume.shape, np.uint8).ravel(order="F")
    before[page_ones(page)] = 1
    before = before.reshape(volume.shape, order="F")

    hover(page)
    page.keyboard.press("f")
    seed = list(centre)
    seed[axes["v"]] += 30
    page.mouse.click(*point(page, seed))
    filled = python_mask(page, at)
    window, region = fill_region(volume, seed, axes["w"], 1, FILL_PARAMS)
    expected = before.copy()
    expected[window] |= region
    assert filled["ones"] == np.flatnonzero(expected.ravel(order="F")).tolist() and filled["tools"][-1:] == ["fill"]
    at = wait_synced(page, at + 1)

    page.keyboard.press("b")
    page.keyboard.press("{")  # back to a 2D brush
    target = list(centre)
    target[axes["w"]] += 3
    page.fill(".goto-ijk input", json.dumps(target))
    page.locator(".goto-button button, button.goto-button").first.click()
    page.wait_for_selector(f"{VIEWER}[data-voxel='{','.join(map(str, target))}']")
    start, end = list(target), list(target)
    end[axes["u"]] += 12
    stroke(page, start, end, moves=6)
    painted = python_mask(page, at)
    at = wait_synced(page, at + 1)
    mask = np.zeros(volume.shape, np.uint8).ravel(order="F")
    mask[painted["ones"]] = 1
    mask = mask.reshape(volume.shape, order="F")

    hover(page)
    page.keyboard.press("i")
    interpolated = python_mask(page, at)
    expected = interpolate_between_slices(mask, axes["w"], volume.spacing)
    assert interpolated["ones"] == np.flatnonzero(expected.ravel(order="F")).tolist()
    assert len(interpolated["ones"]) > len(painted["ones"]), "the slices in between were filled"
    at = wait_synced(page, at + 1)
    page.keyboard.press("Control+z")
    assert python_mask(page, at)["sha256"] == painted["sha256"]


def test_voila_fifty_strokes_undo_one_by_one_back_to_the_mask_before_them(voila_edit):
    page, store, uid = voila_edit
    shape = brain(store, uid).shape
    axes = viewer_js(page, VIEWER, "view.edit.planeAxes()")
    centre = viewer_js(page, VIEWER, "view.currentVoxel().ijk")
    centre[axes["w"]] -= 10  # a slice the other tests left empty: every dab paints
    page.fill(".goto-ijk input", json.dumps(centre))
    page.locator(".goto-button button, button.goto-button").first.click()
    page.wait_for_selector(f"{VIEWER}[data-voxel='{','.join(map(str, centre))}']")
    hover(page)
    page.keyboard.press("b")
    while viewer_js(page, VIEWER, "view.model.get('brush_mm')") > 3.5:
        page.keyboard.press("[")
    while viewer_js(page, VIEWER, "view.model.get('brush_depth')") > 0:
        page.keyboard.press("{")
    at = wait_synced(page, 0)
    start = sorted(page_ones(page))  # what Python holds once synced (the other tests check that)
    start_mask = np.zeros(int(np.prod(shape)), np.uint8)
    start_mask[start] = 1
    dabs = [(du, dv) for dv in range(-25, 26, 10) for du in range(-45, 46, 10)][:50]
    for du, dv in dabs:  # 50 dabs apart from one another, each its own stroke and undo step
        dab = list(centre)
        dab[axes["u"]] += du
        dab[axes["v"]] += dv
        stroke(page, dab, [d + (1 if n == axes["u"] else 0) for n, d in enumerate(dab)], moves=1)
    painted = python_mask(page, at + 49)
    at = wait_synced(page, at + 50)
    assert page.get_attribute(VIEWER, "data-edit-undo") in {str(n) for n in range(50, 101)}
    assert len(painted["ones"]) > len(start) + 50 * 5
    hover(page)
    for _ in range(50):
        page.keyboard.press("Control+z")
    undone = python_mask(page, at + 49)
    wait_synced(page, at + 50)
    assert undone["sha256"] == mask_sha256(start_mask.reshape(shape, order="F")) and undone["ones"] == start
    assert sorted(page_ones(page)) == start and page.get_attribute(VIEWER, "data-edit-redo") == "50"


# ---------------------------------------------------------------------- JupyterLab and Notebook 7
def _jupyter(server_factory, source, browser, folder: Path, check) -> None:
    notebooks, env, store, uid = _served(source, folder)
    with server_factory(notebooks, env=env) as server:
        page = browser.new_page()
        console = collect_console(page)
        try:
            page.goto(server.url_for("edit.ipynb"))
            run_all_cells(page)
            open_editor(page)
            check(page, store, uid)
        except Exception:
            print("\n".join(console[-40:]), server.log()[-4000:])
            raise
        finally:
            page.close()


def test_jupyterlab_a_stroke_syncs_exactly_undo_restores_and_the_save_reads_back(source, browser, tmp_path):
    def check(page, store, uid):
        cells = "() => window.jupyterapp.shell.currentWidget.content.widgets.length"
        count = page.evaluate(cells)
        volume = brain(store, uid)
        stroked = check_stroke(page, volume)  # presses ] and } over the viewer: JupyterLab must not see them
        check_undo_redo(page, stroked, volume.shape)
        hover(page)
        page.keyboard.press("b")  # JupyterLab's "insert cell below" in command mode
        assert page.evaluate(cells) == count, "a shortcut of the viewer reached JupyterLab"
        check_save(page, store, uid, "v000001")

    _jupyter(jupyterlab_server, source, browser, tmp_path, check)


def test_notebook_7_renders_the_viewer_and_a_stroke_syncs(source, browser, tmp_path):
    def check(page, store, uid):
        assert_real_image(screenshot_pixels(main_canvas(page, VIEWER)))
        axes = viewer_js(page, VIEWER, "view.edit.planeAxes()")
        centre = viewer_js(page, VIEWER, "view.currentVoxel().ijk")
        end = list(centre)
        end[axes["u"]] += 20
        stroke(page, centre, end)
        mask = python_mask(page, 0)
        assert mask["ones"] and sorted(page_ones(page)) == mask["ones"]

    _jupyter(notebook7_server, source, browser, tmp_path, check)
