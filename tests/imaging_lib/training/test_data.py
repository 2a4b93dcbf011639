"""From reviewed labels to slices: which slices are lesion, the checks before loading, the split by patient."""

from __future__ import annotations

import numpy as np
import pytest

from imaging_lib.errors import InvalidTrainingSet
from imaging_lib.store import layout
from imaging_lib.store.catalog import Catalog
from imaging_lib.store.objects import Store
from imaging_lib.training import TrainingParams
from imaging_lib.training.data import UNLABELLED, check_training_set, load_training_data, slice_targets
from support.training_store import TEST_PARAMS, build_demo_labelled_store, build_training_store


def test_slice_labels_come_from_slice_labels_then_the_mask_then_a_no_lesion_study():
    mask = np.zeros((4, 4, 6), np.uint8)
    mask[1, 1, 2:4] = 1
    lesion = {"study_uid": "s", "study_label": "lesion", "slice_labels": {}, "slice_axis": 2}
    assert list(slice_targets(lesion, mask, 6, 2)) == [0, 0, 1, 1, 0, 0]
    assert list(slice_targets(lesion, None, 6, 2)) == [UNLABELLED] * 6  # a study label only says "somewhere"
    corrected = {**lesion, "slice_labels": {"3": "no_lesion", "5": "lesion"}}
    assert list(slice_targets(corrected, mask, 6, 2)) == [0, 0, 1, 0, 0, 1]
    healthy = {"study_uid": "s", "study_label": "no_lesion", "slice_labels": {}}
    assert list(slice_targets(healthy, None, 6, 2)) == [0] * 6
    with pytest.raises(InvalidTrainingSet, match="outside the study"):
        slice_targets({**lesion, "slice_labels": {"9": "lesion"}}, None, 6, 2)
    with pytest.raises(InvalidTrainingSet, match="along axis 0"):
        slice_targets({**corrected, "slice_axis": 0}, None, 6, 2)


def test_a_set_without_labels_with_one_class_or_with_a_dangling_label_is_refused(tmp_path):
    store = Store(tmp_path / "store")
    with pytest.raises(InvalidTrainingSet, match="no accepted labels"):
        check_training_set(Catalog(store).training_set())
    labels = build_training_store(store, studies=4, lesion_every=10)  # only the first has a lesion
    lesion_uid = next(uid for uid, label in labels.items() if label == "lesion")
    store.delete(layout.study_record_key(lesion_uid))
    manifest = Catalog(store).training_set()
    with pytest.raises(InvalidTrainingSet, match=f"{lesion_uid}.*study record is missing"):
        check_training_set(manifest)
    clean = {**manifest, "skipped": []}
    with pytest.raises(InvalidTrainingSet, match="one class only"):
        check_training_set(clean)


def test_slices_are_windowed_like_prediction_and_a_patient_is_on_one_side(tmp_path):
    store = Store(tmp_path / "store")
    labels = build_training_store(store)
    params = TrainingParams.from_mapping(TEST_PARAMS)
    data = load_training_data(store, Catalog(store).training_set(), params)
    sides = {}
    for split, studies in data.studies.items():
        for study in studies:
            assert sides.setdefault(study.split_group, split) == split
            assert study.study_label == (labels[study.study_uid] == "lesion")
            assert study.images.shape[1:] == (32, 32) and study.images.dtype == np.float32
            assert study.images.min() >= 0.0 and study.images.max() <= 1.0
            if split == "train":
                assert len(study.images) <= params.max_slices_per_study and (study.targets != UNLABELLED).all()
            else:
                assert len(study.images) == 8  # every slice: the study score needs them all
    summary = data.summary()
    assert sum(len(uids) for uids in summary["splits"].values()) == len(labels)
    assert all(summary["slice_counts"][split]["lesion"] > 0 for split in ("train", "validation"))


def test_a_patients_studies_stay_together_in_the_demo_data(tmp_path):
    store = Store(tmp_path / "store")
    build_demo_labelled_store(store)
    manifest = Catalog(store).training_set()
    groups = {}
    for entry in manifest["entries"]:
        groups.setdefault(entry["split_group"], []).append(entry)
    shared = [members for members in groups.values() if len(members) > 1]
    # the brain series and its lesion copy (one patient), CT_small and its lesion copy (another)
    assert sorted(sorted(m["study_label"] for m in members) for members in shared) == [["lesion", "no_lesion"]] * 2
    params = TrainingParams.from_mapping({**TEST_PARAMS, "validation_fraction": 0.5, "test_fraction": 0.0})
    from imaging_lib.training.split import split_by_group

    splits = split_by_group(manifest["entries"], validation_fraction=0.5, test_fraction=0.0, seed=params.split_seed)
    side = {uid: split for split, uids in splits.items() for uid in uids}
    for members in shared:
        assert len({side[m["study_uid"]] for m in members}) == 1


def test_a_volume_gone_from_the_store_names_its_study(tmp_path):
    store = Store(tmp_path / "store")
    labels = build_training_store(store)
    victim = sorted(labels)[0]
    store.delete(Catalog(store).record(layout.study_record_key(victim))["volume_key"])
    with pytest.raises(InvalidTrainingSet, match=f"{victim}: its volume .* cannot be read"):
        load_training_data(store, Catalog(store).training_set(), TrainingParams.from_mapping(TEST_PARAMS))


def test_too_many_slices_are_refused_before_loading(tmp_path, monkeypatch):
    from imaging_lib.training import data

    store = Store(tmp_path / "store")
    build_training_store(store, studies=4)
    monkeypatch.setattr(data, "TRAINING_MAX_INPUT_BYTES", 1000)
    with pytest.raises(InvalidTrainingSet, match="over 1000"):
        load_training_data(store, Catalog(store).training_set(), TrainingParams.from_mapping(TEST_PARAMS))
