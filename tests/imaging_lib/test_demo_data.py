"""The demo's lesion studies and its default model: hits on the synthetic lesions, at most one false alarm.

The four real anatomical sample studies (papaya's brain series, ``sample_image.nii.gz``,
``CT_small.dcm``, ``MR_small.dcm``) are healthy; the demo adds three copies with one known
synthetic lesion. Everything goes through the real ingest (de-identification included).
"""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest

from imaging_lib import sample_data
from imaging_lib.demo_data import GROUND_TRUTH_TOOL, synthetic_lesion_studies
from imaging_lib.models.registry import default_model, ensure_default_model
from imaging_lib.science.inference import predict
from imaging_lib.store import layout
from imaging_lib.store.catalog import Catalog
from imaging_lib.store.labels import label_history
from imaging_lib.store.objects import Store
from support.training_store import build_demo_labelled_store


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("demo-data") / "store")
    labels = build_demo_labelled_store(store)
    return store, labels


def test_the_lesion_studies_are_made_the_same_every_time_from_real_scans():
    first, second = synthetic_lesion_studies(), synthetic_lesion_studies()
    assert [s.uploads for s in first] == [s.uploads for s in second]
    assert [s.name for s in first] == ["brain", "sample_image", "ct"]
    for study in first:
        assert study.mask.any() and study.mask.shape == study.array.shape
    brain = pydicom.dcmread(sample_data.brain_series()[0])
    copy = pydicom.dcmread(io.BytesIO(first[0].uploads[0][1]))
    assert copy.StudyInstanceUID != brain.StudyInstanceUID and copy.PatientID == brain.PatientID


def test_the_shipped_default_flags_at_most_one_real_study_and_finds_every_lesion_study(demo):
    store, labels = demo
    model = ensure_default_model(store).load()
    catalog = Catalog(store)
    decided = {}
    for row in catalog.studies().to_dict("records"):
        prediction = predict(store.read_volume(row["volume_key"]), model)
        decided[row["study_uid"]] = prediction.label
    real = [uid for uid, label in labels.items() if label == "no_lesion"]
    lesions = [uid for uid, label in labels.items() if label == "lesion"]
    assert len(real) == 4 and len(lesions) == 3
    assert sum(decided[uid] == "lesion" for uid in real) <= 1, decided
    assert all(decided[uid] == "lesion" for uid in lesions), decided
    assert default_model(store).model_id == model.model_id


def test_the_known_truth_is_saved_as_reviewed_labels_on_the_stored_grids(demo):
    store, labels = demo
    catalog = Catalog(store)
    manifest = catalog.training_set()
    assert manifest["class_counts"] == {"lesion": 3, "no_lesion": 4} and not manifest["skipped"]
    for entry in manifest["entries"]:
        (version,) = label_history(store, entry["study_uid"])
        assert version["tool"] == GROUND_TRUTH_TOOL and version["study_label"] == labels[entry["study_uid"]]
        if entry["study_label"] == "lesion":
            volume = store.read_volume(entry["volume_key"])
            mask = store.read_volume(entry["mask_key"])
            assert mask.array.shape == volume.array.shape and np.allclose(mask.affine, volume.affine)
            assert version["mask"]["reviewed"] and mask.array.any()


def test_the_lesion_studies_are_de_identified_like_any_input(demo):
    store, _ = demo
    brain = pydicom.dcmread(sample_data.brain_series()[0])
    identifiers = {str(brain.PatientID).encode(), str(brain.PatientName).encode(), str(brain.StudyInstanceUID).encode()}
    for key in store.list("raw/"):
        data = store.read_bytes(key)
        assert not any(value in data for value in identifiers if value), key
    assert all(layout.parse(key).kind == "raw" for key in store.list("raw/"))
