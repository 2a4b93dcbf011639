"""Which stored image each slice of a mask or heat map lies on, checked against the images' own pixels."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest

from imaging_lib.errors import InvalidGeometry, UnsupportedImage
from imaging_lib.interop.sources import read_series_images, slice_order, source_series_for
from imaging_lib.store import layout
from imaging_lib.store.objects import Store


def _copy_study(results_store, name: str, target: Store, *, with_raw: bool = True) -> dict:
    study = results_store.study(name)
    keys = [layout.study_record_key(study["study_uid"]), study["volume_key"]]
    if with_raw:
        keys += results_store.store.list(layout.raw_prefix(study["study_uid"], study["series_uid"]))
    for key, data in results_store.store.read_many(keys).items():
        target.write_bytes(key, data)
    return study


def test_every_slice_of_the_oblique_brain_maps_to_the_image_holding_its_pixels(results_store):
    store = results_store.store
    study = results_store.study("brain")
    volume = store.read_volume(study["volume_key"])
    source = source_series_for(store, study, volume, study["volume_key"])
    orientation = np.asarray([float(v) for v in source.images[0].ImageOrientationPatient])
    assert np.any((np.abs(orientation) > 0.1) & (np.abs(orientation) < 0.99))  # oblique: tilted about 8 degrees
    assert len(source.images) == volume.shape[2] == 20
    frames = source.frames(volume)
    for k, key in enumerate(source.keys):
        image = pydicom.dcmread(io.BytesIO(store.read_bytes(key)))
        assert np.array_equal(frames[k], image.pixel_array), f"slice {k} is not {key}"
        assert np.array_equal(volume.array[:, :, k].T, image.pixel_array)
    assert source.frame_of_reference_uid == str(source.images[-1].FrameOfReferenceUID)


def test_slice_order_is_by_position_not_by_file_or_instance_number(results_store):
    study = results_store.study("brain")
    volume = results_store.store.read_volume(study["volume_key"])
    found = read_series_images(results_store.store, study["study_uid"], study["series_uid"])
    keys, images = [k for k, _ in found], [i for _, i in found]
    order = slice_order(images, keys, volume.affine, volume.shape)
    normal = np.cross(*np.asarray([float(v) for v in images[0].ImageOrientationPatient]).reshape(2, 3))
    heights = [float(np.dot(normal, [float(v) for v in images[i].ImagePositionPatient])) for i in order]
    assert heights == sorted(heights)
    reversed_order = slice_order(images[::-1], keys[::-1], volume.affine, volume.shape)
    assert [keys[::-1][i] for i in reversed_order] == [keys[i] for i in order]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda a: a - _shift(a, 2), "span slices"),
        (lambda a: a - _shift(a, 0) * 3, "i=j=0"),
        (lambda a: a @ np.diag([-1.0, 1.0, 1.0, 1.0]), "run along"),
        (lambda a: a @ np.diag([1.0, 1.0, 2.0, 1.0]), "span slices"),
    ],
    ids=["one slice off", "shifted in plane", "i flipped", "slices twice as far"],
)
def test_a_volume_off_the_series_grid_is_refused(results_store, change, reason):
    study = results_store.study("brain")
    volume = results_store.store.read_volume(study["volume_key"])
    found = read_series_images(results_store.store, study["study_uid"], study["series_uid"])
    with pytest.raises(InvalidGeometry, match=reason):
        slice_order([i for _, i in found], [k for k, _ in found], change(volume.affine), volume.shape)


def _shift(affine: np.ndarray, axis: int) -> np.ndarray:
    """A 4x4 that moves an affine's origin by one voxel along ``axis``."""
    moved = np.zeros((4, 4))
    moved[:3, 3] = affine[:3, axis]
    return moved


def test_a_study_without_stored_dicom_has_nothing_to_reference(results_store, tmp_path):
    target = Store(tmp_path / "store")
    study = _copy_study(results_store, "ct", target, with_raw=False)
    volume = target.read_volume(study["volume_key"])
    with pytest.raises(UnsupportedImage, match="NIfTI inputs have no images"):
        source_series_for(target, study, volume, "mask")


def test_images_not_marked_de_identified_are_never_exported(results_store, tmp_path):
    target = Store(tmp_path / "store")
    study = _copy_study(results_store, "ct", target)
    (key,) = target.list(layout.raw_prefix(study["study_uid"], study["series_uid"]))
    image = pydicom.dcmread(io.BytesIO(target.read_bytes(key)))
    del image.PatientIdentityRemoved
    buffer = io.BytesIO()
    image.save_as(buffer, enforce_file_format=True)
    target.write_bytes(key, buffer.getvalue())
    with pytest.raises(UnsupportedImage, match="not marked de-identified"):
        source_series_for(target, study, target.read_volume(study["volume_key"]), "mask")
