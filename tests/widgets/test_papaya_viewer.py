"""PapayaViewer on the Python side: what it sends, how it places positions, how it links.

The browser half (real Chromium through Voilà and JupyterLab) is in
``test_papaya_viewer_browser.py``.
"""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest
from ipywidgets.widgets.widget import _remove_buffers

from imaging_lib import sample_data
from imaging_lib.errors import InvalidGeometry
from imaging_lib.io.nifti import nifti_from_bytes, write_nifti
from imaging_lib.volume import Volume
from widgets import PapayaViewer, link_viewers
from widgets.papaya import as_volume, colour_table, display_affine, is_mask


@pytest.fixture()
def viewer(brain_volume) -> PapayaViewer:
    return PapayaViewer(brain_volume)


def _mask(volume: Volume) -> np.ndarray:
    mask = np.zeros(volume.shape[:3], np.uint8)
    mask[100:150, 90:140, 8:12] = 1
    return mask


def test_volume_travels_as_uncompressed_nifti_in_a_binary_buffer(viewer, brain_volume):
    data = viewer._volume
    assert data[:2] != b"\x1f\x8b", "the viewer must get uncompressed NIfTI"
    assert len(data) == brain_volume.array.nbytes + 352  # header + vox_offset padding, nothing else
    shown = nifti_from_bytes(data)
    np.testing.assert_array_equal(shown.array, brain_volume.array)
    np.testing.assert_allclose(shown.affine, display_affine(brain_volume.affine), atol=1e-5)

    state, buffer_paths, buffers = _remove_buffers(viewer.get_state())
    assert ["_volume"] in buffer_paths
    assert sum(len(memoryview(b).cast("B")) for b in buffers) == len(data)
    state = {key: value for key, value in state.items() if key not in ("_esm", "_css")}  # the front end itself
    assert len(repr(state)) < 10_000, "voxels must not travel inside the JSON state (no base64)"


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
    assert nifti_from_bytes(from_path._volume).shape == image.shape[:3]

    from_nibabel = PapayaViewer().show(image)
    np.testing.assert_allclose(from_nibabel.volume.affine, image.affine)

    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    array = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    from_array = PapayaViewer(array, affine=affine)
    np.testing.assert_array_equal(nifti_from_bytes(from_array._volume).array, array)
    assert from_array.coordinate["world"] == (2.0, 2.0, 6.0)  # centre voxel (1, 1, 2)

    written = write_nifti(brain_volume, tmp_path / "brain.nii")
    np.testing.assert_array_equal(PapayaViewer(str(written)).volume.array, brain_volume.array)

    with pytest.raises(TypeError, match="cannot show a list"):
        PapayaViewer().show([1, 2, 3])
    with pytest.raises(TypeError, match="affine"):
        as_volume(brain_volume, affine=np.eye(4))


def test_types_papaya_cannot_read_are_converted():
    bools = PapayaViewer(np.zeros((4, 4, 4), bool))
    assert nifti_from_bytes(bools._volume).array.dtype == np.uint8
    big = np.full((4, 4, 4), 7, np.int64)
    assert nifti_from_bytes(PapayaViewer(big)._volume).array.dtype == np.int32
    with pytest.raises(InvalidGeometry, match="3D"):
        PapayaViewer(np.zeros((4, 4, 4, 2), np.int16))


def test_mask_overlay_is_drawn_solid_in_the_overlay_colour(viewer, brain_volume):
    mask = _mask(brain_volume)
    overlay_id = viewer.add_overlay(mask, lut="Red Overlay", name="lesion")
    (spec,) = viewer._overlays
    assert spec["id"] == overlay_id
    # the Red Overlay table ends in white: a 0/1 mask must not use its top colour
    assert spec["colors"] == [[0.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]]
    assert (spec["min"], spec["max"]) == (0.0, 1.0)
    sent = nifti_from_bytes(spec["data"])
    np.testing.assert_array_equal(sent.array, mask)
    np.testing.assert_allclose(sent.affine, display_affine(brain_volume.affine), atol=1e-5)

    viewer.add_overlay(mask, lut="Green Overlay", name="other")
    assert viewer._overlays[1]["colors"][0][1:] == [0.0, 1.0, 0.0]


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
    viewer._handle_browser_message(viewer, {"type": "painted", "volume_id": viewer._volume_id}, [])
    assert viewer.painted["volume_id"] == viewer._volume_id


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
    assert not is_mask(np.array([0, 2]))
    assert not is_mask(np.zeros(3))


def test_nifti_bytes_are_not_gzipped_even_for_masks(viewer, brain_volume):
    viewer.add_overlay(_mask(brain_volume))
    data = viewer._overlays[0]["data"]
    with pytest.raises(gzip.BadGzipFile):
        gzip.decompress(data)
