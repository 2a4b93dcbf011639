"""PapayaViewer on the Python side: what it sends, how it places positions, how it links.

The browser half (real Chromium through Voilà, JupyterLab and Notebook 7) is in
``test_papaya_viewer_browser.py``. Here the browser's requests are played by calling the
widget's message handler, and what the kernel would send is recorded.
"""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from ipywidgets.widgets.widget import _remove_buffers

from imaging_lib import sample_data
from imaging_lib.errors import ImageTooLarge, InvalidGeometry, UnsupportedImage
from imaging_lib.io.nifti import nifti_from_bytes, write_nifti
from imaging_lib.limits import VIEWER_MAX_BYTES
from imaging_lib.volume import Volume
from support.viewer_messages import assemble, fetch, nbytes
from widgets import PapayaViewer, link_viewers, papaya_encoding
from widgets.papaya_encoding import CHUNK_BYTES, as_volume, colour_table, display_affine, is_mask, single_plane


@pytest.fixture()
def viewer(brain_volume) -> PapayaViewer:
    return PapayaViewer(brain_volume)


def _mask(volume: Volume) -> np.ndarray:
    mask = np.zeros(volume.shape[:3], np.uint8)
    mask[100:150, 90:140, 8:12] = 1
    return mask


def decoded(file: bytes, described: dict) -> Volume:
    """The sent NIfTI with its axes put back in the volume's order (as the browser maps indices)."""
    shown = nifti_from_bytes(file)
    order = np.argsort(described["axes"])
    return Volume(np.transpose(shown.array, order), shown.affine[:, [*order, 3]])


def test_volume_travels_as_uncompressed_nifti_in_chunks_cut_from_its_own_memory(brain_volume):
    viewer = PapayaViewer(brain_volume)
    spec = viewer._volume
    messages = fetch(viewer, spec["id"], spec["version"])
    file, described = assemble(messages)
    assert file[:2] != b"\x1f\x8b", "the viewer must get uncompressed NIfTI"
    assert len(file) == brain_volume.array.nbytes + 352 == spec["nbytes"]  # header, no padding
    shown = decoded(file, described)
    np.testing.assert_array_equal(shown.array, brain_volume.array)
    np.testing.assert_allclose(shown.affine, display_affine(brain_volume.affine), atol=1e-4)
    for content, buffers in messages:
        assert sum(memoryview(b).nbytes for b in buffers) <= CHUNK_BYTES < 10 * 1024**2
        assert len(json.dumps(content)) < 400
    body = np.asarray(viewer._base.full.body)
    assert np.shares_memory(body, brain_volume.array), "voxels must be sent from the array itself, not a copy"

    state, _paths, buffers = _remove_buffers(viewer.get_state())
    assert buffers == [], "voxels must not travel in the widget state"
    state = {key: value for key, value in state.items() if key not in ("_esm", "_css")}  # the front end itself
    assert len(json.dumps(state)) < 2_000


def test_c_and_fortran_ordered_arrays_both_travel_without_copies():
    array = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    affine = np.array([[0, 0, -2.0, 90], [1.5, 0, 0, -100], [0, 3.0, 0, -50], [0, 0, 0, 1]])
    for voxels, axes in ((array, (2, 1, 0)), (np.asfortranarray(array), (0, 1, 2))):
        encoded = papaya_encoding.encode_for_papaya(Volume(voxels, affine))
        assert encoded.axes == axes
        assert np.shares_memory(np.asarray(encoded.body), voxels)
        shown = decoded(encoded.to_bytes(), {"axes": encoded.axes})
        np.testing.assert_array_equal(shown.array, array)
        np.testing.assert_allclose(shown.affine, display_affine(affine))
    flipped = array[:, ::-1]  # neither order: one copy
    shown = decoded(papaya_encoding.encode_for_papaya(Volume(flipped, affine)).to_bytes(), {"axes": (0, 1, 2)})
    np.testing.assert_array_equal(shown.array, flipped)


def test_a_mask_travels_one_bit_per_voxel_and_unpacks_exactly():
    rng = np.random.default_rng(1)
    mask = rng.integers(0, 2, (37, 41, 13), dtype=np.uint8)  # 19721 voxels: not a multiple of 8
    for voxels in (mask, mask.astype(bool), np.asfortranarray(mask)):
        viewer = PapayaViewer(np.zeros(mask.shape, np.int16))
        layer_id = viewer.add_overlay(voxels, name="mask")
        messages = fetch(viewer, layer_id)
        assert sum(memoryview(b).nbytes for _c, bs in messages for b in bs) == 352 + (mask.size + 7) // 8
        np.testing.assert_array_equal(decoded(*assemble(messages)).array, mask)
    labels = mask * 2  # not 0/1: travels as bytes
    encoded = papaya_encoding.encode_for_papaya(Volume(labels, np.eye(4)))
    assert not encoded.bits and encoded.sent_bytes == encoded.nbytes == 352 + labels.nbytes
    chunked = list(encoded.chunks(4096))
    assert all(memoryview(b).nbytes <= 4096 for _c, bs in chunked for b in bs)
    np.testing.assert_array_equal(
        decoded(
            *assemble([({**c, "part": "full", "total": encoded.nbytes, "axes": encoded.axes}, bs) for c, bs in chunked])
        ).array,
        labels,
    )


def test_a_large_volume_sends_a_downsampled_preview_first(monkeypatch):
    monkeypatch.setattr(papaya_encoding, "PROGRESSIVE_BYTES", 1024**2)
    monkeypatch.setattr(papaya_encoding, "PREVIEW_BYTES", 256 * 1024)
    array = np.random.default_rng(0).integers(0, 1000, (128, 128, 128), dtype=np.int16)  # 4 MiB
    affine = np.diag([0.5, 0.7, 1.2, 1.0])
    viewer = PapayaViewer(array, affine=affine)
    spec = viewer._volume
    assert spec["preview"]
    messages = fetch(viewer, spec["id"], spec["version"], preview=True)
    parts = [content["part"] for content, _ in messages]
    assert parts.index("full") > parts.index("preview") and "preview" not in parts[parts.index("full") :]
    preview_file, described = assemble(messages, "preview")
    assert described["stride"] == 3  # (4 MiB / 256 KiB) ** (1/3) = 2.5
    preview = decoded(preview_file, described)
    np.testing.assert_array_equal(preview.array, array[::3, ::3, ::3])
    np.testing.assert_allclose(preview.affine, affine @ np.diag([3, 3, 3, 1]))
    full = decoded(*assemble(messages, "full"))
    np.testing.assert_array_equal(full.array, array)
    assert len(preview_file) < 256 * 1024 < len(assemble(messages, "full")[0])

    without = fetch(viewer, spec["id"], spec["version"], preview=False)
    assert {content["part"] for content, _ in without} == {"full"}, "a page that asks for no preview gets none"


def test_a_volume_too_large_for_a_browser_tab_is_refused_in_python_and_in_the_widget(brain_volume):
    viewer = PapayaViewer(brain_volume)
    shown = dict(viewer._volume)
    huge = np.zeros((1024, 1024, 512), np.int16)  # 1 GiB, never touched
    with pytest.raises(ImageTooLarge, match="1024 MiB"):
        viewer.show(huge)
    assert "1024 MiB" in viewer._notice and f"{VIEWER_MAX_BYTES // 1024**2} MiB" in viewer._notice
    assert viewer._volume == shown and viewer.volume is brain_volume, "the image shown stays"
    viewer.show(brain_volume)
    assert viewer._notice == ""

    ct = PapayaViewer(np.zeros((512, 512, 400), np.int16))  # 200 MiB: shown
    for n in range(5):  # 100 MiB each, all in one tab: 700 MiB
        ct.add_overlay(np.zeros((512, 512, 400), bool), min=0, max=1, name=f"mask {n}")
    with pytest.raises(ImageTooLarge, match="800 MiB"):
        ct.add_overlay(np.zeros((512, 512, 400), np.uint8), min=0, max=1)
    ct.add_overlay(np.zeros((512, 512, 400), np.uint8), min=0, max=1, name="mask 4")  # replaces one: fits


def test_transfers_stay_within_a_window_take_turns_and_stop_when_replaced(monkeypatch):
    from widgets import papaya_layers

    monkeypatch.setattr(papaya_layers, "TRANSFER_WINDOW", 64 * 1024)
    monkeypatch.setattr(papaya_layers, "CHUNK_BYTES", 16 * 1024)
    viewer = PapayaViewer(np.arange(64 * 64 * 64, dtype=np.int16).reshape(64, 64, 64))  # 512 KiB
    mask_id = viewer.add_overlay(np.ones((64, 64, 64), np.uint8), name="mask")  # 32 KiB as bits
    sent: list[tuple[dict, list]] = []
    viewer.send = lambda content, buffers=None: sent.append((content, list(buffers or [])))  # type: ignore[method-assign]

    def browser(content):
        viewer._handle_browser_message(viewer, content, [])

    base = viewer._volume["id"]
    browser({"type": "fetch", "layer": base, "version": 1, "transfer": "base"})
    assert nbytes(b for _c, bs in sent for b in bs) == 352 + 64 * 1024, "no more than the window ahead of acks"
    browser({"type": "fetch", "layer": mask_id, "version": 1, "transfer": "mask"})
    mask = [(c, bs) for c, bs in sent if c["transfer"] == "mask"]
    assert sum(nbytes(bs) for _c, bs in mask) == 352 + 64**3 // 8, "the mask travels while the volume waits"
    browser({"type": "ack", "transfer": "base", "bytes": 16 * 1024})
    assert sent[-1][0]["transfer"] == "base" and nbytes(sent[-1][1]) == 16 * 1024, (
        "one more chunk per chunk acknowledged"
    )
    count = len(sent)
    viewer.show(np.zeros((8, 8, 8), np.int16))
    browser({"type": "ack", "transfer": "base", "bytes": 64 * 1024})
    assert len(sent) == count, "a replaced image stops travelling"


def test_a_stale_fetch_is_answered_gone(viewer, brain_volume):
    old = viewer._volume["id"]
    viewer.show(brain_volume)
    (reply,) = fetch(viewer, old)
    assert reply[0]["type"] == "gone" and reply[1] == []
    (reply,) = fetch(viewer, viewer._volume["id"], version=2)
    assert reply[0]["type"] == "gone"


def test_a_single_slice_is_shown_in_its_own_plane():
    assert single_plane((128, 128, 1), np.eye(4)) == "axial"
    assert single_plane((1, 64, 64), np.eye(4)) == "sagittal"
    assert single_plane((64, 1, 64), np.diag([-1.0, -1.0, 1.0, 1.0])) == "coronal"
    assert single_plane((64, 64, 64), np.eye(4)) is None
    lps_slice = np.array([[0, 0, -2.0, 0], [-0.7, 0, 0, 0], [0, 0.7, 0, 0], [0, 0, 0, 1]])  # flat axis runs L-R
    assert single_plane((256, 256, 1), lps_slice) == "sagittal"
    ct = PapayaViewer(np.zeros((128, 128), np.int16))  # 2D arrays become one slice
    assert ct._volume["plane"] == "axial" and ct._volume["shape"] == [128, 128, 1]
    assert PapayaViewer(np.zeros((8, 8, 8), np.int16))._volume["plane"] is None


def test_the_browser_reporting_an_unreadable_image_sets_a_typed_error(viewer):
    errors = []
    viewer.observe(lambda change: errors.append(change["new"]), names="error")
    viewer._handle_browser_message(viewer, {"type": "error", "message": "Datatype is not valid or not supported!"}, [])
    (error,) = errors
    assert isinstance(error, UnsupportedImage) and "Datatype is not valid" in str(error)
    assert viewer.last_error == "Datatype is not valid or not supported!"


def test_oblique_volume_is_shown_on_its_voxel_grid(brain_volume):
    affine = brain_volume.affine
    shown = display_affine(affine)
    linear = shown[:3, :3]
    assert abs(np.linalg.det(affine[:3, :3])) > 0
    assert not np.allclose(np.count_nonzero(np.abs(affine[:3, :3]) > 1e-6, axis=0), 1), "sample is oblique"
    assert np.all(np.count_nonzero(linear, axis=0) == 1), "display affine must have no rotation"
    np.testing.assert_allclose(np.linalg.norm(linear, axis=0), brain_volume.spacing)
    assert nib.aff2axcodes(shown) == brain_volume.orientation
    np.testing.assert_allclose(shown[:3, 3], affine[:3, 3])


def test_display_affine_keeps_a_non_oblique_affine():
    affine = np.array([[0, 0, -2.0, 90], [1.5, 0, 0, -100], [0, 3.0, 0, -50], [0, 0, 0, 1]])
    np.testing.assert_allclose(display_affine(affine), affine)


def test_show_accepts_paths_nibabel_images_and_arrays(tmp_path, brain_volume):
    path = sample_data.papaya_nifti("sample_image.nii.gz")
    from_path = PapayaViewer().show(path)
    image = nib.load(path)
    np.testing.assert_array_equal(from_path.volume.array, np.asanyarray(image.dataobj)[..., 0])  # 4D, one frame
    assert from_path._volume["shape"] == list(image.shape[:3])

    from_nibabel = PapayaViewer().show(image)
    np.testing.assert_allclose(from_nibabel.volume.affine, image.affine)

    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    array = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    from_array = PapayaViewer(array, affine=affine)
    sent = fetch(from_array, from_array._volume["id"])
    np.testing.assert_array_equal(decoded(*assemble(sent)).array, array)
    assert from_array.coordinate["world"] == (2.0, 2.0, 6.0)  # centre voxel (1, 1, 2)

    written = write_nifti(brain_volume, tmp_path / "brain.nii")
    np.testing.assert_array_equal(PapayaViewer(str(written)).volume.array, brain_volume.array)

    with pytest.raises(TypeError, match="cannot show a list"):
        PapayaViewer().show([1, 2, 3])
    with pytest.raises(TypeError, match="affine"):
        as_volume(brain_volume, affine=np.eye(4))


def test_types_papaya_cannot_read_are_converted():
    def sent_dtype(array: np.ndarray) -> np.dtype:
        return nifti_from_bytes(papaya_encoding.encode_for_papaya(Volume(array, np.eye(4))).to_bytes()).array.dtype

    bools = np.zeros((4, 4, 4), bool)
    assert sent_dtype(bools) == np.uint8
    assert sent_dtype(np.full((4, 4, 4), 7, np.int64)) == np.int32
    assert sent_dtype(np.full((4, 4, 4), 2**40, np.int64)) == np.float64
    assert sent_dtype(np.zeros((4, 4, 4), ">i2")) == np.dtype("<i2")
    with pytest.raises(InvalidGeometry, match="3D"):
        PapayaViewer(np.zeros((4, 4, 4, 2), np.int16))
    with pytest.raises(TypeError, match="complex"):
        PapayaViewer(np.zeros((4, 4, 4), np.complex64))


def test_mask_overlay_is_drawn_solid_in_the_overlay_colour(viewer, brain_volume):
    mask = _mask(brain_volume)
    overlay_id = viewer.add_overlay(mask, lut="Red Overlay", name="lesion")
    (model,) = viewer._overlays
    assert model.layer_id == overlay_id
    # the Red Overlay table ends in white: a 0/1 mask must not use its top colour
    assert model.colors == [[0.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]]
    assert (model.min, model.max) == (0.0, 1.0)
    sent = decoded(*assemble(fetch(viewer, overlay_id, model.version)))
    np.testing.assert_array_equal(sent.array, mask)
    np.testing.assert_allclose(sent.affine, display_affine(brain_volume.affine), atol=1e-4)

    viewer.add_overlay(mask, lut="Green Overlay", name="other")
    assert viewer._overlays[1].colors[0][1:] == [0.0, 1.0, 0.0]


def test_heat_map_overlay_keeps_its_table_and_range(viewer, brain_volume):
    heat = np.linspace(-1, 1, brain_volume.array.size, dtype=np.float32).reshape(brain_volume.shape)
    viewer.add_overlay(heat, lut="Hot-and-Cold", min=0.1, max=0.9, alpha=0.4)
    spec = viewer.overlays[0]
    assert spec["lut"] == "Hot-and-Cold" and spec["colors"] is None
    assert (spec["min"], spec["max"], spec["alpha"]) == (0.1, 0.9, 0.4)


def test_custom_colour_tables(viewer, brain_volume):
    knots = [[0, 0, 0, 1], [0.5, 0, 1, 0], [1, 1, 1, 0]]
    viewer.add_overlay(brain_volume, lut=knots, min=100, max=600)
    assert viewer.overlays[0]["colors"] == [[float(v) for v in k] for k in knots]
    assert colour_table(color="lime") == [[0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 1.0, 0.0]]
    viridis = colour_table("viridis")
    assert len(viridis) == 16 and viridis[0][0] == 0.0 and viridis[-1][0] == 1.0
    assert colour_table("Spectrum") is None
    with pytest.raises(ValueError, match="rise from 0 to 1"):
        colour_table([[0.2, 1, 0, 0], [1, 1, 1, 1]])
    with pytest.raises(ValueError, match="unknown colour table"):
        colour_table("no such table")


def test_each_overlay_is_its_own_model_and_travels_once(viewer, brain_volume):
    """Adding a mask sends its own bytes when the browser asks; removing one sends no voxels."""
    masks = [np.roll(_mask(brain_volume), 10 * n, axis=0) for n in range(5)]
    fetched: list[int] = []
    for n, mask in enumerate(masks):
        overlay_id = viewer.add_overlay(mask, name=f"mask {n}")
        state, _paths, buffers = _remove_buffers(viewer.get_state(["_overlays"]))
        assert buffers == [] and len(json.dumps(state)) < 80 * (n + 1), "the list holds model references only"
        model = viewer._overlays[-1]
        child_state, _paths, child_buffers = _remove_buffers(model.get_state())
        assert child_buffers == [] and len(json.dumps(child_state)) < 1_000
        fetched.append(sum(memoryview(b).nbytes for _c, bs in fetch(viewer, overlay_id, model.version) for b in bs))
    assert fetched == [mask.size // 8 + 352 for mask in masks], "a 0/1 mask travels as one bit per voxel"
    removed = viewer._overlays[2]
    viewer.remove_overlay("mask 2")
    assert removed.comm is None, "a removed overlay's model is closed"
    assert [o["name"] for o in viewer.overlays] == ["mask 0", "mask 1", "mask 3", "mask 4"]
    assert fetch(viewer, removed.layer_id)[0][0]["type"] == "gone"


def test_update_overlay_changes_its_settings_and_keeps_its_data(viewer, brain_volume):
    overlay_id = viewer.add_overlay(_mask(brain_volume), name="seg")
    model = viewer._overlays[0]
    viewer.update_overlay("seg", alpha=0.25, color="blue")
    assert (model.alpha, model.colors[0][1:], model.lut) == (0.25, [0.0, 0.0, 1.0], None)
    viewer.update_overlay(overlay_id, lut="Spectrum", min=0.2, max=0.8)
    assert (model.lut, model.colors, model.min, model.max) == ("Spectrum", None, 0.2, 0.8)
    assert viewer._overlays == [model] and model.version == 1, "no new layer, nothing to fetch again"
    with pytest.raises(ValueError, match="alpha"):
        viewer.update_overlay("seg", alpha=2)
    with pytest.raises(KeyError):
        viewer.update_overlay("nothing", alpha=0.5)


def test_overlays_are_removed_and_replaced(viewer, brain_volume):
    mask = _mask(brain_volume)
    first = viewer.add_overlay(mask, name="seg")
    heat = viewer.add_overlay(brain_volume.array.astype(np.float32), lut="Spectrum", name="heat")
    replacement = viewer.add_overlay(1 - mask, name="seg")
    assert [o["name"] for o in viewer.overlays] == ["heat", "seg"]
    assert first not in [o["id"] for o in viewer.overlays]
    viewer.remove_overlay(heat)
    assert [o["id"] for o in viewer.overlays] == [replacement]
    viewer.remove_overlay("seg")
    assert viewer.overlays == []
    with pytest.raises(KeyError):
        viewer.remove_overlay("seg")


def test_overlay_on_another_grid_is_refused(viewer, brain_volume):
    with pytest.raises(InvalidGeometry, match="shape"):
        viewer.add_overlay(np.zeros((10, 10, 10), np.uint8))
    shifted = brain_volume.affine.copy()
    shifted[:3, 3] += 5.0
    moved = Volume(_mask(brain_volume), shifted)
    with pytest.raises(InvalidGeometry, match="affine"):
        viewer.add_overlay(moved)
    with pytest.raises(RuntimeError, match="show"):
        PapayaViewer().add_overlay(_mask(brain_volume))


def test_goto_sets_voxel_world_and_value(viewer, brain_volume):
    position = viewer.goto(ijk=(60, 180, 15))
    assert position["ijk"] == (60, 180, 15)
    np.testing.assert_allclose(position["world"], (brain_volume.affine @ np.array([60, 180, 15, 1]))[:3])
    assert position["value"] == brain_volume.array[60, 180, 15]
    assert viewer.coordinate == position
    first_seq = viewer._cursor["seq"]
    assert viewer._cursor["ijk"] == [60, 180, 15]

    again = viewer.goto(world=position["world"])
    assert again["ijk"] == (60, 180, 15)
    assert viewer._cursor["seq"] > first_seq, "the same target must still move the view"
    with pytest.raises(ValueError, match="outside"):
        viewer.goto(ijk=(300, 0, 0))
    with pytest.raises(ValueError, match="exactly one"):
        viewer.goto()


def test_browser_clicks_reach_callbacks_with_voxel_world_and_value(viewer, brain_volume):
    clicks = []
    viewer.on_click(lambda voxel, world, value: clicks.append((voxel, world, value)))
    viewer._handle_browser_message(viewer, {"type": "position", "ijk": [10, 20, 3]}, [])
    assert clicks == [] and viewer.coordinate["ijk"] == (10, 20, 3)
    viewer._handle_browser_message(viewer, {"type": "click", "ijk": [120, 130, 9]}, [])
    ((voxel, world, value),) = clicks
    assert voxel == (120, 130, 9)
    np.testing.assert_allclose(world, brain_volume.voxel_to_world([120, 130, 9]))
    assert value == brain_volume.array[120, 130, 9]
    viewer._handle_browser_message(viewer, {"type": "click", "ijk": [999, 0, 0]}, [])
    assert len(clicks) == 1, "positions outside the volume are ignored"
    viewer._handle_browser_message(viewer, {"type": "painted", "volume_id": viewer._volume["id"]}, [])
    assert viewer.painted["volume_id"] == viewer._volume["id"]


def test_linked_viewers_follow_each_other_in_world_space(brain_volume):
    a = PapayaViewer(brain_volume)
    ras = brain_volume.as_ras()
    b = PapayaViewer(ras)
    link = link_viewers(a, b)
    a.goto(ijk=(40, 200, 5))
    world = a.coordinate["world"]
    np.testing.assert_allclose(b.coordinate["world"], world, atol=1e-6)
    assert b.coordinate["ijk"] != (40, 200, 5), "the other viewer's voxel axes are flipped"
    assert b.coordinate["value"] == a.coordinate["value"]
    b._handle_browser_message(b, {"type": "click", "ijk": [10, 11, 12]}, [])
    np.testing.assert_allclose(a.coordinate["world"], b.coordinate["world"], atol=1e-6)
    link.unlink()
    a.goto(ijk=(1, 2, 3))
    assert b.coordinate["ijk"] == (10, 11, 12)


def test_window_level_and_busy_state(viewer):
    viewer.set_window(level=400, width=600)
    assert (viewer.window_min, viewer.window_max) == (100, 700)
    with pytest.raises(ValueError):
        viewer.set_window(level=0, width=0)
    viewer.busy, viewer.busy_message = True, "Segmenting…"
    state = viewer.get_state(["busy", "busy_message"])
    assert state == {"busy": True, "busy_message": "Segmenting…"}


def test_is_mask():
    assert is_mask(np.array([0, 1, 1], np.uint8))
    assert is_mask(np.array([0.0, 1.0]))
    assert is_mask(np.array([False, True]))
    assert not is_mask(np.array([0, 2]))
    assert not is_mask(np.array([-1, 1]))
    assert not is_mask(np.zeros(3))


def test_an_unbuilt_front_end_is_a_clear_missing_dependency(monkeypatch, tmp_path):
    from imaging_lib.errors import MissingDependency
    from widgets import papaya

    monkeypatch.setattr(papaya, "BUNDLE", tmp_path / "papaya_widget.js")
    with pytest.raises(MissingDependency, match="npm run build"):
        PapayaViewer()
