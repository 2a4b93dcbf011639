"""The catalog over records written by a real ingest, on a local store and the GCS emulator."""

from __future__ import annotations

from collections import Counter
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from imaging_lib import sample_data
from imaging_lib.errors import StaleLabelVersion
from imaging_lib.ingestion.batch import ingest
from imaging_lib.store import layout, review
from imaging_lib.store.catalog import LABEL_COLUMNS, RESULT_COLUMNS, STUDY_COLUMNS, Catalog, job_status_by_study
from imaging_lib.store.labels import save_label_version
from imaging_lib.store.objects import Store
from imaging_lib.volume import Volume
from support.reviewed import copy_store, predicted_brain_store, record_prediction

SECRET = "catalog-test-secret-0123456789"


@pytest.fixture
def filled(store, brain_files):
    sources = [*brain_files, sample_data.pydicom_file("CT_small.dcm"), sample_data.papaya_nifti()]
    summary = ingest(sources, store, secret=SECRET, progress=False)
    assert not summary.quarantined
    return store


def _study(frame, modality):
    return frame[frame["modality"] == modality].iloc[0]


def test_studies_have_the_agreed_columns(filled):
    studies = Catalog(filled).studies()
    assert list(studies.columns[: len(STUDY_COLUMNS)]) == STUDY_COLUMNS
    assert sorted(studies["modality"].fillna("")) == ["", "CT", "MR"]
    brain = _study(studies, "MR")
    assert brain["shape"] == (256, 256, 20) and brain["series_count"] == 1
    assert brain["patient_pseudonym"].startswith("ANON-")
    assert isinstance(brain["study_date"], pd.Timestamp)
    assert filled.exists(brain["volume_key"])


def test_filters_by_modality_and_date(filled):
    catalog = Catalog(filled)
    studies = catalog.studies()
    assert list(catalog.studies(modality="CT")["modality"]) == ["CT"]
    assert len(catalog.studies(modality=["CT", "MR"])) == 2
    ct_date = _study(studies, "CT")["study_date"]
    within = catalog.studies(date_from=ct_date.date(), date_to=ct_date.date())
    assert list(within["modality"]) == ["CT"]
    assert catalog.studies(date_to="1900-01-01").empty


def test_results_and_prediction_filter(filled):
    catalog = Catalog(filled)
    studies = catalog.studies()
    mr, ct = _study(studies, "MR")["study_uid"], _study(studies, "CT")["study_uid"]
    for uid, label, when in ((mr, "lesion", "2026-01-02T00:00:00+00:00"), (ct, "normal", "2026-01-01T00:00:00+00:00")):
        filled.write_json(
            layout.result_record_key(uid, "demo-cnn"),
            {
                "study_uid": uid,
                "model_id": "demo-cnn",
                "model_checksum": "ab" * 32,
                "label": label,
                "probability": 0.9,
                "most_suspicious_slice": 3,
                "explanation_key": f"explanations/{uid}/demo-cnn.nii.gz",
                "slice_probabilities": [0.1, 0.9],
                "created_at": when,
            },
        )
    results = catalog.results()
    assert list(results.columns[: len(RESULT_COLUMNS)]) == RESULT_COLUMNS
    assert list(results["study_uid"]) == [mr, ct]  # newest first
    assert results.set_index("study_uid").at[mr, "slice_probabilities"] == [0.1, 0.9]  # nested fields are kept
    assert list(catalog.studies(prediction="lesion")["study_uid"]) == [mr]
    assert list(catalog.studies(prediction="normal", model_id="other-model")["study_uid"]) == []
    assert list(catalog.results(label="normal")["study_uid"]) == [ct]


def test_unreadable_record_is_skipped_and_named(filled):
    filled.write_bytes("records/studies/broken.json", b"{half a record")
    catalog = Catalog(filled)
    assert len(catalog.studies()) == 3
    assert catalog.unreadable == ["records/studies/broken.json"]


def test_empty_store_gives_empty_frames_with_columns(tmp_path):
    catalog = Catalog(str(tmp_path / "empty"))
    assert catalog.studies().empty and list(catalog.studies().columns) == STUDY_COLUMNS
    assert catalog.results().empty and catalog.jobs().empty and catalog.segmentations().empty
    assert catalog.quarantine().empty


def test_records_of_older_stores_read_with_todays_field_names(store):
    """Records as the first version wrote them: flat provenance, params, heatmap_key, segmentation_key."""
    store.write_json(
        layout.study_record_key("s1"),
        {
            "study_uid": "s1",
            "patient_id": "ANON-OLD",
            "modality": "MR",
            "series": [],
            "provenance": {
                "library_version": "0.1.0",
                "ingested_at": "2026-01-01T00:00:00+00:00",
                "source_sha256": ["ab"],
            },
        },
    )
    store.write_json(
        layout.result_record_key("s1", "m"),
        {
            "study_uid": "s1",
            "model_id": "m",
            "params": {"num_samples": 7},
            "heatmap_key": "explanations/s1/m.nii.gz",
            "created_at": "2026-01-02T00:00:00+00:00",
            "library_version": "0.1.0",
        },
    )
    store.write_json(
        layout.segmentation_record_key("s1", "seg-1"),
        {
            "study_uid": "s1",
            "seg_id": "seg-1",
            "segmentation_key": "segmentations/s1/seg-1.nii.gz",
            "parameters": {"tolerance": 2.0},
            "quantification": {"volume_ml": 1.5},
        },
    )
    store.write_json(
        layout.job_record_key("batch-1"),
        {
            "job_id": "batch-1",
            "kind": "batch",
            "status": "finished",
            "created_at": "2026-01-03T00:00:00+00:00",
            "model_uri": "package://demo",
            "items": {"s1": {"state": "skipped"}},
        },
    )
    catalog = Catalog(store)
    study = catalog.studies().iloc[0]
    assert study["patient_pseudonym"] == "ANON-OLD" and study["created_at"] == pd.Timestamp("2026-01-01", tz="UTC")
    result = catalog.latest_result("s1")
    assert result["explanation_key"] == "explanations/s1/m.nii.gz" and "heatmap_key" not in result
    assert result["provenance"]["parameters"] == {"num_samples": 7} and "params" not in result
    mask = catalog.segmentations().iloc[0]
    assert mask["mask_key"] == "segmentations/s1/seg-1.nii.gz" and mask["parameters"] == {"tolerance": 2.0}
    assert mask["quantification.volume_ml"] == 1.5
    (job,) = catalog.job_records()
    assert job["provenance"]["parameters"] == {"model_uri": "package://demo"} and "model_uri" not in job
    assert catalog.jobs().iloc[0]["created_at"] == pd.Timestamp("2026-01-03", tz="UTC")
    assert catalog.job_status_by_study() == {"s1": "done"}


def test_has_a_result_means_the_same_model_id_and_checksum(store):
    for uid, sha in (("a", "11"), ("b", "22"), ("c", "11")):
        store.write_json(layout.result_record_key(uid, "m"), {"study_uid": uid, "model_id": "m", "model_checksum": sha})
    store.write_json(
        layout.result_record_key("d", "other"), {"study_uid": "d", "model_id": "other", "model_checksum": "11"}
    )
    catalog = Catalog(store)
    assert catalog.studies_with_result("m", "11") == {"a", "c"}
    assert catalog.studies_with_result("m", "11", ["a", "b"]) == {"a"}
    assert catalog.studies_with_result("m", "33") == set()


def test_latest_result_is_the_newest_of_the_study_or_of_one_model(store):
    for model, when in (("old", "2026-01-01T00:00:00+00:00"), ("new", "2026-02-01T00:00:00+00:00")):
        store.write_json(
            layout.result_record_key("s", model),
            {"study_uid": "s", "model_id": model, "provenance": {"created_at": when}},
        )
    catalog = Catalog(store)
    assert catalog.latest_result("s")["model_id"] == "new"
    assert catalog.latest_result("s", "old")["model_id"] == "old"
    assert catalog.latest_result("s", "missing") is None and catalog.latest_result("t") is None


class _CountingStore(Store):
    """A real store that counts the keys it reads (to see what a refresh costs)."""

    read_keys: ClassVar[list[str]] = []

    def read_many(self, keys, *, skip_missing=False):
        keys = list(keys)
        type(self).read_keys.extend(keys)
        return super().read_many(keys, skip_missing=skip_missing)


def test_a_refresh_reads_only_the_records_that_changed(tmp_path):
    store = _CountingStore(tmp_path / "store")
    for uid in ("a", "b", "c"):
        store.write_json(layout.study_record_key(uid), {"study_uid": uid, "modality": "MR", "series": []})
    catalog = Catalog(store)
    assert len(catalog.studies()) == 3 and len(store.read_keys) == 3
    store.read_keys.clear()
    assert len(catalog.studies()) == 3 and store.read_keys == []  # nothing changed: nothing read
    store.write_json(layout.study_record_key("b"), {"study_uid": "b", "modality": "CT", "series": []})
    store.write_json(layout.study_record_key("d"), {"study_uid": "d", "modality": "CT", "series": []})
    store.delete(layout.study_record_key("a"))
    studies = catalog.studies()
    assert sorted(store.read_keys) == [layout.study_record_key("b"), layout.study_record_key("d")]
    assert dict(zip(studies["study_uid"], studies["modality"], strict=True)) == {"b": "CT", "c": "MR", "d": "CT"}
    assert catalog.study_uids() == ["b", "c", "d"]


def test_the_latest_batch_decides_a_studys_job_status():
    old = {
        "kind": "batch",
        "created_at": "2024-01-01T00:00:00",
        "items": {"a": {"state": "failed"}, "b": {"state": "done"}},
    }
    new = {
        "kind": "batch",
        "created_at": "2024-02-01T00:00:00",
        "items": {"a": {"state": "running"}, "c": {"state": "skipped"}},
    }
    report = {"kind": "report", "created_at": "2024-03-01T00:00:00", "items": {"a": {"state": "failed"}}}
    assert job_status_by_study([new, report, old]) == {"a": "running", "b": "done", "c": "done"}


# ---------------------------------------------------------------------------- review and labels
@pytest.fixture(scope="module")
def predicted_source(tmp_path_factory):
    return predicted_brain_store(tmp_path_factory.mktemp("catalog-review"))


@pytest.fixture
def predicted(predicted_source, tmp_path):
    """(store, brain study UID, CT study UID): the predicted brain MR and an unpredicted CT, fresh per test."""
    store = copy_store(predicted_source[0], Store(tmp_path / "store"))
    # the session's key, as the brain series was: a store refuses a second key
    summary = ingest([sample_data.pydicom_file("CT_small.dcm")], store, progress=False)
    return store, predicted_source[1], summary.ingested[0]["study_uid"]


def _statuses(catalog: Catalog) -> dict[str, str]:
    return catalog.studies().set_index("study_uid")["review_status"].to_dict()


def test_review_status_column_filter_and_counts(predicted):
    store, brain, ct = predicted
    catalog = Catalog(store)
    assert _statuses(catalog) == {brain: review.NEEDS_REVIEW, ct: review.NOT_REVIEWED}
    assert list(catalog.studies(review_status="needs review")["study_uid"]) == [brain]
    save_label_version(store, brain, parent=None, decision="rejected", comment="artefact")
    save_label_version(store, ct, parent=None, study_label="no_lesion")
    studies = catalog.studies().set_index("study_uid")
    assert studies.at[brain, "review_status"] == review.REJECTED and studies.at[ct, "review_status"] == review.LABELLED
    assert studies.at[ct, "study_label"] == "no_lesion"
    assert catalog.studies(review_status="needs review").empty
    assert list(catalog.studies(review_status="rejected")["study_uid"]) == [brain]
    counts = catalog.review_counts()
    assert counts["studies"] == 2 and counts["predicted"] == 1 and counts["rejected"] == 1
    assert counts["needs review"] == counts["accepted"] == 0 and counts["labelled"] == 1
    record_prediction(store, brain)  # the model predicts again: a new result nobody has reviewed
    assert _statuses(catalog)[brain] == review.NEEDS_REVIEW
    save_label_version(store, brain, parent="v000001", decision="accepted")
    assert _statuses(catalog)[brain] == review.ACCEPTED and catalog.review_counts()["accepted"] == 1


def test_labels_frame_lists_every_version_with_its_verdict_and_acceptance(predicted):
    store, brain, _ct = predicted
    catalog = Catalog(store)
    assert list(catalog.labels().columns[: len(LABEL_COLUMNS)]) == LABEL_COLUMNS and catalog.labels().empty
    save_label_version(store, brain, parent=None, decision="rejected", tool="review-panel")
    with pytest.raises(StaleLabelVersion):
        save_label_version(store, brain, parent=None, study_label="lesion", comment="late")
    frame = catalog.labels(study_uid=brain)
    assert list(frame["branch"]) == [False, True] and list(frame["comment"]) == ["", "late"]
    assert frame["verdict"].iloc[0] == "rejected" and pd.isna(frame["verdict"].iloc[1])  # the branch began afresh
    assert list(frame["accepted"]) == [True, True] and frame["created_by"].notna().all()


def _brain_mask(store: Store, uid: str) -> Volume:
    volume = store.read_volume(Catalog(store).studies().set_index("study_uid").at[uid, "volume_key"])
    array = np.zeros(volume.shape[:3], dtype=np.uint8)
    array[60:90, 70:100, 9:11] = 1
    return Volume(array, volume.affine)


def test_training_set_holds_each_studys_latest_accepted_version(predicted):
    store, brain, ct = predicted
    catalog = Catalog(store)
    empty = catalog.training_set()
    assert empty["studies"] == 0 and empty["class_counts"] == {} and empty["entries"] == []
    first = save_label_version(store, brain, parent=None, decision="rejected", slice_labels={10: "no_lesion"})
    save_label_version(store, brain, parent="v000001", mask=_brain_mask(store, brain), tool="brush")  # not checked yet
    manifest = catalog.training_set()
    (entry,) = manifest["entries"]
    assert (entry["version"], entry["latest_version"], entry["mask_key"]) == ("v000001", "v000002", None)
    assert entry["study_label"] == first["study_label"] and entry["slice_labels"] == {"10": "no_lesion"}
    assert entry["content_sha256"] == first["content_sha256"] and entry["patient_pseudonym"].startswith("ANON-")
    assert entry["split_group"] == entry["patient_pseudonym"]
    assert manifest["class_counts"] == {first["study_label"]: 1} and manifest["slice_class_counts"] == {"no_lesion": 1}

    checked = save_label_version(store, brain, parent="v000002", mask_reviewed=True, tool="review-panel")
    save_label_version(store, ct, parent=None, study_label="lesion", slice_labels={0: "lesion"})
    manifest = catalog.training_set()
    assert manifest == {**catalog.training_set(), "provenance": manifest["provenance"]}  # same labels, same manifest
    by_study = {e["study_uid"]: e for e in manifest["entries"]}
    assert by_study[brain]["version"] == "v000003" and by_study[brain]["mask_key"] == checked["mask"]["key"]
    assert by_study[brain]["mask_sha256"] == checked["mask"]["sha256"] and store.exists(checked["mask"]["key"])
    assert manifest["studies"] == manifest["patients"] == 2 and manifest["masks"] == 1
    assert manifest["class_counts"] == dict(sorted(Counter([first["study_label"], "lesion"]).items()))
    assert manifest["manifest_sha256"] != empty["manifest_sha256"]

    store.delete(layout.study_record_key(ct))  # a label now points at a missing study
    after = catalog.training_set()
    assert [e["study_uid"] for e in after["entries"]] == [brain]
    assert after["skipped"] == [{"study_uid": ct, "version": "v000001", "reason": after["skipped"][0]["reason"]}]
    assert "study record is missing" in after["skipped"][0]["reason"]
    store.delete(checked["mask"]["key"])  # and a mask is gone
    assert "missing from the store" in {s["study_uid"]: s["reason"] for s in catalog.training_set()["skipped"]}[brain]
