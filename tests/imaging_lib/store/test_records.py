"""Record shapes, provenance, and the reading of records that older versions wrote."""

from __future__ import annotations

import json

import numpy as np
import pytest

import imaging_lib
from imaging_lib import sample_data
from imaging_lib.ingestion import ingest
from imaging_lib.io import read_dicom_series
from imaging_lib.science.preprocess import window_for
from imaging_lib.store import Catalog, ingest_records, layout, records
from imaging_lib.volume import Volume

SECRET = "records-test-secret-0123456789"


def test_provenance_names_the_version_time_user_and_parameters(monkeypatch):
    monkeypatch.setenv("IMAGING_USER", "reviewer-1")
    found = records.provenance({"tolerance": 2.0}, function="f")
    assert found["library_version"] == imaging_lib.__version__
    assert found["created_at"].endswith("+00:00") and found["created_by"] == "reviewer-1"
    assert found["parameters"] == {"tolerance": 2.0} and found["function"] == "f"
    assert records.provenance(created_by="someone")["created_by"] == "someone"


def test_without_a_hub_user_the_operating_system_user_acts(monkeypatch):
    import getpass

    monkeypatch.delenv("IMAGING_USER", raising=False)
    monkeypatch.delenv("JUPYTERHUB_USER", raising=False)
    assert records.current_user() == getpass.getuser()
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    assert records.current_user() == "alice"


def _series(uid: str, shape: tuple[int, int, int]) -> dict:
    volume = Volume(np.zeros(shape, np.int16), np.eye(4), {"window_center": 40.0, "window_width": 400.0})
    return ingest_records.series_entry(
        volume, series_uid=uid, volume_key=layout.volume_key("s", uid), modality="CT", description="d", file_count=1
    )


def test_the_largest_series_is_the_study_primary_and_series_merge():
    small, large = _series("1", (4, 4, 2)), _series("2", (8, 8, 4))
    first = ingest_records.study_record(
        "s", patient_pseudonym="ANON-X", study_date="2020-01-01", series=[small], sources=["k1"], deidentification=[]
    )
    merged = ingest_records.merge_series(first, large)
    assert [s["series_uid"] for s in merged] == ["1", "2"]
    second = ingest_records.study_record(
        "s",
        patient_pseudonym="ANON-X",
        study_date=None,
        series=merged,
        sources=["k2", "k1"],
        deidentification=["113100"],
    )
    assert second["series_uid"] == "2" and second["shape"] == [8, 8, 4]
    assert second["provenance"]["sources"] == ["k1", "k2"]
    assert large["window_center"] == 40.0 and large["window_width"] == 400.0
    assert ingest_records.merge_series(second, {**small, "description": "again"})[0]["description"] == "again"
    json.dumps(second, allow_nan=False)  # JSON as stored


def test_normalise_is_idempotent_and_keeps_todays_records_as_they_are():
    today = records.result_record(
        {"model_id": "m", "label": "lesion", "provenance": {"created_at": "x"}},
        study={"study_uid": "s", "volume_key": "volumes/s/1.nii.gz"},
        explanation_key="explanations/s/m.nii.gz",
        explanation={"weights": {}},
        parameters={"num_samples": 3},
    )
    assert records.normalise("result_record", today) == today
    old = {"study_uid": "s", "params": {"a": 1}, "created_at": "t", "library_version": "0.1", "heatmap_key": "h"}
    once = records.normalise("result_record", old)
    assert once == records.normalise("result_record", once)
    assert once["provenance"] == {"parameters": {"a": 1}, "created_at": "t", "library_version": "0.1"}
    assert once["explanation_key"] == "h"


@pytest.fixture
def mr_store(tmp_path):
    store_url = str(tmp_path / "store")
    summary = ingest([sample_data.pydicom_file("MR_small.dcm")], store_url, secret=SECRET, progress=False)
    assert len(summary.studies) == 1
    return store_url, summary.studies[0]


def test_a_stored_volume_predicts_with_the_window_of_its_dicom_header(mr_store):
    """A model whose spec says ``"window": "dicom"`` sees the same window in a notebook and in the batch."""
    store_url, study_uid = mr_store
    catalog = Catalog(store_url)
    study = catalog.record(layout.study_record_key(study_uid))
    stored = catalog.store.read_volume(study["volume_key"])
    original = read_dicom_series([sample_data.pydicom_file("MR_small.dcm")])
    assert original.metadata["window_center"] is not None
    for name in ("modality", "window_center", "window_width", "rescale_type"):
        assert stored.metadata[name] == original.metadata[name], name
    assert stored.metadata["patient_id"] == study["patient_pseudonym"]
    spec = {"window": "dicom"}
    assert window_for(stored.array, spec, stored.metadata) == window_for(original.array, spec, original.metadata)


def test_read_record_refuses_keys_that_are_not_records(mr_store):
    store_url, study_uid = mr_store
    store = Catalog(store_url).store
    with pytest.raises(ValueError, match="not a record key"):
        records.read_record(store, layout.volume_key(study_uid, "x"))
