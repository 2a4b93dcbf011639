"""The catalog over records written by a real ingest, on a local store and the GCS emulator."""

from __future__ import annotations

import pandas as pd
import pytest

from imaging_lib import sample_data
from imaging_lib.ingestion.batch import ingest
from imaging_lib.store import layout
from imaging_lib.store.catalog import RESULT_COLUMNS, STUDY_COLUMNS, Catalog

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
                "model_sha256": "ab" * 32,
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
    assert "slice_probabilities" not in results
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
