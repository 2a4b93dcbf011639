"""The PapayaViewer's edit mode on the Python side: patches from a page, from Python, fill and interpolation.

The page is played by calling the widget's message handler with the messages the front
end sends (``widgets/js/papaya_masks.js``), and what the kernel sends back is recorded.
The browser half, with real strokes in Chromium, is ``test_papaya_edit_browser.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from imaging_lib.errors import InvalidLabel, MaskGeometryMismatch
from imaging_lib.science.region_growing import grow_region
from imaging_lib.science.slice_interpolation import interpolate_between_slices
from imaging_lib.volume import Volume
from support.viewer_messages import ORIGIN, Page, assemble, fetch
from widgets import PapayaViewer, papaya_edit
from widgets.papaya_edit import FILL_PARAMS
from widgets.papaya_patches import indices_from_runs, patch_messages, runs_from_indices


def applied(messages: list[tuple[dict, list]], shape) -> np.ndarray:
    """What a page's mask becomes after the kernel's patch messages (flat F-order indices -> values)."""
    mask = np.zeros(int(np.prod(shape)), np.int16) - 1
    for content, buffers in messages:
        if content["type"] == "patch":
            runs = np.frombuffer(buffers[0], "<u4").reshape(-1, 2)
            indices, values = indices_from_runs(runs, np.frombuffer(buffers[1], np.uint8))
            mask[indices] = values
    return mask


@pytest.fixture()
def edited(brain_volume):
    viewer = PapayaViewer(brain_volume)
    initial = np.zeros(brain_volume.shape, np.uint8)
    initial[100:150, 90:140, 8:12] = 1
    layer = viewer.add_overlay(initial, name="mask", editable=True)
    viewer.edit("mask")
    return viewer, layer, initial, Page(viewer)


def test_a_stroke_from_the_page_changes_exactly_its_voxels_and_is_confirmed(edited):
    viewer, layer, initial, page = edited
    calls = []
    viewer.on_edit(lambda name, tool, count: calls.append((name, tool, count)))
    disk = np.zeros(initial.shape, np.uint8)
    i, j = np.ogrid[:256, :256]
    disk[..., 3] = (i - 60) ** 2 + (j - 70) ** 2 <= 9**2
    indices = np.flatnonzero(disk.ravel(order="F"))
    replies = page.patch(layer, 0, indices, 1)
    assert [content["type"] for content, _ in replies] == ["patched"]
    assert replies[0][0] | {"revision": 1, "origin": ORIGIN, "tool": "brush"} == replies[0][0]
    np.testing.assert_array_equal(viewer.mask("mask"), initial | disk)
    assert calls == [("mask", "brush", indices.size)] and viewer.edited_with("mask") == ["brush"]
    assert viewer.mask("mask").flags.c_contiguous and initial.sum() == 50 * 50 * 4, "the caller's array is untouched"

    erased = np.flatnonzero(initial.ravel(order="F"))[:500]
    page.patch(layer, 1, erased, 0, tool="eraser")
    expected = (initial | disk).ravel(order="F")
    expected[erased] = 0
    np.testing.assert_array_equal(viewer.mask("mask").ravel(order="F"), expected)
    assert viewer.edited_with("mask") == ["brush", "eraser"]
    viewer.mark_saved("mask")
    assert viewer.edited_with("mask") == []


def test_a_patch_on_a_stale_revision_is_refused_and_a_fetch_resyncs_the_page(edited):
    viewer, layer, initial, page = edited
    viewer.patch_mask("mask", [0, 1, 2], 1)  # Python moves the mask to revision 1
    page.take()
    replies = page.patch(layer, 0, [5000, 5001], 1)  # the page had not seen it
    assert [(c["type"], c["origin"], c["revision"]) for c, _ in replies] == [("refused", ORIGIN, 1)]
    assert "revision 0" in replies[0][0]["reason"]
    assert viewer.mask("mask").ravel(order="F")[5000] == 0, "a refused patch changes nothing"

    messages = fetch(viewer, layer, page.version(layer))  # the page fetches the mask again
    file, described = assemble(messages)
    assert described["revision"] == 1
    shown = np.frombuffer(file[352:], np.uint8).reshape(initial.shape, order="F")
    np.testing.assert_array_equal(shown, viewer.mask("mask"))
    page = Page(viewer)
    assert page.patch(layer, 1, [5000, 5001], 1)[0][0]["type"] == "patched"


def test_python_patches_and_sets_by_diff_and_the_previous_values_undo_exactly(edited):
    viewer, layer, initial, page = edited
    target = np.flatnonzero(initial.ravel(order="F"))[:10]
    previous = viewer.patch_mask("mask", np.r_[target, [7, 8]], 0)
    assert previous.tolist() == [1] * 10 + [0, 0]
    messages = page.take()
    assert [(c["type"], c["base"], c["revision"], c["voxels"]) for c, _ in messages] == [("patch", 0, 1, 10)]
    assert sorted(np.flatnonzero(applied(messages, initial.shape) >= 0)) == sorted(target), "unchanged voxels stay home"
    viewer.patch_mask("mask", np.r_[target, [7, 8]], previous)
    np.testing.assert_array_equal(viewer.mask("mask"), initial)

    moved = np.roll(initial, 3, axis=0)
    changed = viewer.set_mask("mask", moved)
    assert changed == int((moved != initial).sum())
    messages = page.take()
    sent = sum(memoryview(b).nbytes for _, buffers in messages for b in buffers)
    assert sent < initial.size / 100, f"{sent} bytes for a {initial.size}-voxel mask: a diff, not a resend"
    np.testing.assert_array_equal(viewer.mask("mask"), moved)
    c_order = viewer.patch_mask("mask", [np.ravel_multi_index((1, 2, 3), initial.shape)], 1, order="C")
    assert c_order.tolist() == [0] and viewer.mask("mask")[1, 2, 3] == 1


def test_python_refuses_bad_masks_and_sends_a_huge_diff_as_a_new_version(edited, monkeypatch):
    viewer, layer, initial, page = edited
    with pytest.raises(InvalidLabel, match="0 and 1"):
        viewer.patch_mask("mask", [1, 2], 2)
    with pytest.raises(MaskGeometryMismatch, match="shape"):
        viewer.set_mask("mask", np.zeros((10, 10, 10), np.uint8))
    with pytest.raises(InvalidLabel, match="0 and 1"):
        viewer.set_mask("mask", initial * 3)
    np.testing.assert_array_equal(viewer.mask("mask"), initial)
    monkeypatch.setattr(papaya_edit, "TRANSFER_WINDOW", 64)
    version = page.version(layer)
    viewer.set_mask("mask", (np.indices(initial.shape).sum(axis=0) % 2).astype(np.uint8))  # a checkerboard
    assert [content["type"] for content, _ in page.take()] == ["reloaded"]
    assert page.version(layer) == version + 1, "the page fetches the new version (acknowledged chunks)"


def test_making_a_mask_editable_keeps_the_users_array_and_resends_only_another_memory_order(brain_volume):
    viewer = PapayaViewer(brain_volume)
    c_ordered = np.zeros(brain_volume.shape, np.uint8)
    f_ordered = np.asfortranarray(c_ordered)
    c_id = viewer.add_overlay(c_ordered, name="c")
    f_id = viewer.add_overlay(f_ordered, name="f")
    viewer.add_overlay(brain_volume.array.astype(np.float32), name="heat")
    viewer.edit("c")
    viewer.edit("f")
    assert viewer._overlay_model(c_id).version == 2 and viewer._overlay_model(f_id).version == 1
    assert viewer.edit_overlay == f_id and viewer._overlay_model("f").editable
    assert viewer._overlay_model("f").colors is not None, "an empty mask is drawn solid when painted"
    viewer.patch_mask("f", [0], 1)
    assert f_ordered[0, 0, 0] == 0, "Python edits its own copy"
    with pytest.raises(InvalidLabel, match="0/1"):
        viewer.edit("heat")
    viewer.remove_overlay("f")
    assert viewer.edit_overlay == "" and viewer.edit(None) is None


def test_fill_grows_a_region_in_the_slab_and_comes_back_to_the_page_that_asked(edited, brain_volume):
    viewer, layer, initial, page = edited
    seed = [128, 150, 10]
    request = {"type": "fill", "layer": layer, "version": page.version(layer), "base": 0, "origin": ORIGIN,
               "request": 7, "ijk": seed, "axis": 2, "depth": 1}  # fmt: skip
    messages = page.message(request)
    assert {(c["type"], c["origin"], c["request"], c["tool"]) for c, _ in messages} == {("patch", ORIGIN, 7, "fill")}
    slab = Volume(np.ascontiguousarray(brain_volume.array[:, :, 9:12]), brain_volume.affine.copy())
    slab.affine[:3, 3] = brain_volume.voxel_to_world([0, 0, 9])
    region = grow_region(slab, [128, 150, 1], **FILL_PARAMS).array
    expected = initial.copy()
    expected[:, :, 9:12] |= region
    np.testing.assert_array_equal(viewer.mask("mask"), expected)
    assert (applied(messages, initial.shape) == 1).sum() == int((expected != initial).sum())
    assert viewer.edited_with("mask") == ["fill"]

    stale = page.message({**request, "request": 8})
    assert stale[0][0]["type"] == "refused" and stale[0][0]["request"] == 8
    bad = page.message({**request, "base": 1, "ijk": [999, 0, 0]})
    assert bad[0][0]["type"] == "refused" and "seed" in bad[0][0]["reason"]
    deep = page.message({**request, "base": 1, "depth": 1000})
    assert deep[0][0]["type"] == "refused" and "depth" in deep[0][0]["reason"]
    viewer.fill_params = {"tolerance": 50.0, "max_volume_ml": 0.001}
    failed = page.message({**request, "base": 1, "request": 9})
    assert [(c["type"], c["request"]) for c, _ in failed] == [("tool-failed", 9)]
    assert "above the limit" in failed[0][0]["message"]


def test_interpolate_fills_the_slices_between_painted_ones(edited, brain_volume):
    viewer, layer, initial, page = edited
    messages = page.message({"type": "interpolate", "layer": layer, "version": page.version(layer), "base": 0,
                             "origin": ORIGIN, "request": 1, "axis": 2})  # fmt: skip
    assert [c["voxels"] for c, _ in messages] == [0], "slices 8-11 are all painted: nothing in between"
    mask = np.zeros(initial.shape, np.uint8)
    mask[100:140, 90:130, 2] = 1
    mask[110:150, 100:140, 9] = 1
    viewer.set_mask("mask", mask)
    page.take()
    messages = page.message({"type": "interpolate", "layer": layer, "version": page.version(layer), "base": 2,
                             "origin": ORIGIN, "request": 2, "axis": 2})  # fmt: skip
    expected = interpolate_between_slices(mask, 2, brain_volume.spacing)
    np.testing.assert_array_equal(viewer.mask("mask"), expected)
    assert messages[0][0]["voxels"] == int((expected != mask).sum()) > 0
    assert viewer.edited_with("mask") == ["python", "interpolate"]


def test_pages_cannot_edit_what_is_not_editable_and_parts_arrive_in_order(edited, brain_volume, monkeypatch):
    viewer, layer, initial, page = edited
    other = viewer.add_overlay(initial, name="other")
    refused = page.message({"type": "patch", "layer": other, "version": 1, "base": 0, "origin": ORIGIN})
    assert refused[0][0]["type"] == "refused" and "no editable overlay" in refused[0][0]["reason"]
    assert page.patch(layer, 0, [1, 2], 1, version=99)[0][0]["type"] == "refused"

    monkeypatch.setattr("widgets.papaya_patches.MAX_RUNS_PER_PART", 2)
    indices = [1, 3, 5, 7, 9]  # five runs: three parts
    replies = page.patch(layer, 0, indices, 1)
    assert [c["type"] for c, _ in replies] == ["received", "received", "patched"]
    assert viewer.mask("mask").ravel(order="F")[indices].tolist() == [1] * 5
    runs, values = runs_from_indices(np.array([20, 22, 24]), np.ones(3))
    header = {"type": "patch", "layer": layer, "version": page.version(layer), "base": 1, "revision": 2,
              "tool": "brush", "origin": ORIGIN}  # fmt: skip
    first, second = list(patch_messages(runs, values, header))
    assert page.message(*first)[0][0]["type"] == "received"
    assert viewer.edits_arriving("mask")
    assert page.message(*first)[0][0]["type"] == "received", "a new first part starts the patch again"
    assert page.message({**second[0], "part": 1, "revision": 3, "base": 2}, second[1])[0][0]["type"] == "refused"
    assert not viewer.edits_arriving("mask") and page.message(*second)[0][0]["type"] == "refused"
    assert viewer.mask("mask").ravel(order="F")[20] == 0
