"""One trial, in this process: epochs, checkpoints, metrics, TensorBoard, resume, early stopping, cancel, NaN.

Runs on small real-scan slabs (``support.training_store``) with a tiny network, a few
epochs each; the Dask side (parallel sweeps, a killed worker) is in ``tests/imaging_lib/jobs``.
"""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from imaging_lib.errors import InvalidTrainingSet, PermissionDenied, TrainingDiverged
from imaging_lib.identity import identity_for
from imaging_lib.models import register_builder
from imaging_lib.models.registry import load_registered_model, read_model_record, registered_models
from imaging_lib.store import layout, records
from imaging_lib.store.catalog import Catalog
from imaging_lib.store.objects import Store
from imaging_lib.training import TrainingParams, cancellation, request_cancel, run_trial
from support.training_store import TEST_PARAMS, build_training_store


class NanNet(nn.Module):
    """An architecture whose logits are NaN: the loss of its first batch is NaN."""

    def __init__(self, num_classes: int = 2) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.mean(dim=(1, 2, 3)) * self.scale).log()[:, None].expand(-1, 2) * float("nan")


register_builder("nan_net_for_tests", NanNet)


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "store")
    build_training_store(store)
    return store


def _job(store: Store, job_id: str) -> str:
    """A job record for ``job_id``, as run_training writes one (cancel needs the job to exist)."""
    record = records.job_record(
        job_id, "training", state={"status": "running"}, parameters={}, created_at=records.now()
    )
    store.write_json(layout.job_record_key(job_id), record)
    return job_id


def _run(store: Store, job_id: str, **params):
    trial = TrainingParams.from_mapping({**TEST_PARAMS, **params}).to_dict()
    manifest = Catalog(store).training_set()
    return run_trial("trial-00", store=store, job_id=job_id, trials={"trial-00": trial}, manifest=manifest)


def test_a_trial_checkpoints_every_epoch_writes_metrics_and_registers_its_model(store):
    seen = []

    def on_epoch(entry):
        keys = [k for k in store.list(layout.trial_prefix("training-a", "trial-00")) if "checkpoint" in k]
        seen.append((entry["epoch"], keys))

    trial = TrainingParams.from_mapping({**TEST_PARAMS, "epochs": 4}).to_dict()
    manifest = Catalog(store).training_set()
    summary = run_trial(
        "trial-00", store=store, job_id="training-a", trials={"trial-00": trial}, manifest=manifest, on_epoch=on_epoch
    )
    assert [(epoch, keys) for epoch, keys in seen] == [
        (epoch, [layout.checkpoint_key("training-a", "trial-00", epoch)]) for epoch in range(1, 5)
    ]
    metrics = store.read_json(layout.trial_metrics_key("training-a", "trial-00"))
    assert metrics["status"] == "finished" and [e["epoch"] for e in metrics["epochs"]] == [1, 2, 3, 4]
    assert all(e["loss"] > 0 and 0 <= e["val_auc"] <= 1 for e in metrics["epochs"])
    assert summary["model_id"] == metrics["model_id"] and summary["epochs_run"] == 4

    record = read_model_record(store, summary["model_id"])
    assert record["lineage"]["manifest_sha256"] == manifest["manifest_sha256"]
    assert record["lineage"]["training_parameters"] == trial and record["lineage"]["parent_model"] is None
    assert len(record["lineage"]["code_version"]["source_sha256"]) == 64
    assert record["metrics"]["evaluated_on"] == "test"
    for name in ("validation_slice_auc", "test_slice_auc", "study_sensitivity", "study_specificity"):
        assert record["metrics"][name] is not None, name
    assert record["decision"]["aggregate"] == "top_k_mean" and "validation split" in record["decision"]["chosen_on"]
    assert record["training"]["best_epoch"] == metrics["best_epoch"]
    assert summary["model_id"] in record["card"] and "Split by patient" in record["card"]
    test_studies = set(record["data"]["splits"]["test"])
    assert test_studies and not test_studies & set(record["data"]["splits"]["train"])
    model = load_registered_model(store, summary["model_id"])  # pinned, from the store
    assert (
        model.checksum == record["model_checksum"]
        and model.spec.decision_rule.threshold == record["decision"]["threshold"]
    )


def test_tensorboard_event_files_hold_the_epochs(store):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _run(store, "training-tb", epochs=3)
    events = [k for k in store.list("training/training-tb/") if layout.parse(k).kind == "tensorboard_events"]
    assert len(events) == 1
    path = store.full_path(events[0])
    accumulator = EventAccumulator(path)
    accumulator.Reload()
    assert [event.step for event in accumulator.Scalars("trial-00/val_auc")] == [1, 2, 3]


def test_without_tensorboard_the_metrics_are_json_only(store, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if the extra were not installed
    summary = _run(store, "training-json", epochs=2)
    keys = store.list("training/training-json/")
    assert not [k for k in keys if layout.parse(k).kind == "tensorboard_events"]
    assert summary["status"] == "finished" and layout.trial_metrics_key("training-json", "trial-00") in keys


class Crash(Exception):
    """Stands for the worker dying after an epoch's checkpoint was stored."""


def test_a_trial_resumes_from_its_checkpoint_and_ends_as_if_never_interrupted(store):
    manifest = Catalog(store).training_set()
    trial = {"trial-00": TrainingParams.from_mapping({**TEST_PARAMS, "epochs": 4}).to_dict()}
    whole = run_trial("trial-00", store=store, job_id="training-whole", trials=trial, manifest=manifest)

    def crash_after_two(entry):
        if entry["epoch"] == 2:
            raise Crash

    with pytest.raises(Crash):
        run_trial(
            "trial-00", store=store, job_id="training-cut", trials=trial, manifest=manifest, on_epoch=crash_after_two
        )
    assert store.read_json(layout.trial_metrics_key("training-cut", "trial-00"))["status"] == "running"
    resumed = run_trial("trial-00", store=store, job_id="training-cut", trials=trial, manifest=manifest)
    metrics = store.read_json(layout.trial_metrics_key("training-cut", "trial-00"))
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2, 3, 4] and metrics["resumed_from"] == [2]
    # weights, optimiser and random states came back: the same model as the uninterrupted run
    assert resumed["model_id"] == whole["model_id"]
    assert len(registered_models(store)) == 1
    again = run_trial("trial-00", store=store, job_id="training-cut", trials=trial, manifest=manifest)
    assert again == resumed  # a finished trial is not trained twice


def test_early_stopping_keeps_the_best_epoch(store):
    summary = _run(store, "training-early", epochs=8, patience=1, learning_rate=1e-7)
    metrics = store.read_json(layout.trial_metrics_key("training-early", "trial-00"))
    assert len(metrics["epochs"]) == 2 and metrics["best_epoch"] == 1
    assert metrics["stopped"].startswith("early stopping") and summary["model_id"]


def test_a_cancelled_job_stops_its_trial_and_registers_nothing(store):
    job_id = _job(store, "training-cancel")

    def cancel_after_first(entry):
        if entry["epoch"] == 1:
            request_cancel(store, job_id, identity=identity_for("ada", ["researcher"]), reason="wrong labels")

    trial = {"trial-00": TrainingParams.from_mapping({**TEST_PARAMS, "epochs": 6}).to_dict()}
    manifest = Catalog(store).training_set()
    summary = run_trial(
        "trial-00", store=store, job_id=job_id, trials=trial, manifest=manifest, on_epoch=cancel_after_first
    )
    assert summary["status"] == "cancelled" and summary["epochs_run"] == 1 and summary["model_id"] is None
    assert summary["stopped"] == "cancelled by ada: wrong labels"
    assert registered_models(store) == {}
    assert (
        request_cancel(store, job_id, identity=identity_for("bob", ["admin"]))["provenance"]["created_by"] == "ada"
    )  # the first request stands


def test_only_a_user_who_may_train_may_cancel(store):
    job_id = _job(store, "training-guarded")
    for refused in (identity_for("vera", ["viewer"]), identity_for("rolf", ["reviewer"])):
        with pytest.raises(PermissionDenied, match="may not train models"):
            request_cancel(store, job_id, identity=refused, reason="forged")
    assert cancellation(store, job_id) is None


def test_a_nan_loss_fails_the_trial_with_a_clear_error(store):
    with pytest.raises(TrainingDiverged, match=r"the loss became nan in batch 1"):
        _run(store, "training-nan", architecture="nan_net_for_tests", architecture_params={"num_classes": 2})
    metrics = store.read_json(layout.trial_metrics_key("training-nan", "trial-00"))
    assert metrics["status"] == "failed" and metrics["error"]["error_type"] == "TrainingDiverged"
    assert registered_models(store) == {}


def test_a_single_class_set_fails_before_training(tmp_path):
    store = Store(tmp_path / "store")
    build_training_store(store, studies=4, lesion_every=100)  # studies 1-3 healthy, only study 0 has a lesion
    first = min(Catalog(store).training_set()["entries"], key=lambda e: e["study_label"])
    assert first["study_label"] == "lesion"
    store.delete(layout.label_record_key(first["study_uid"], "v000001"))
    with pytest.raises(InvalidTrainingSet, match="one class only"):
        _run(store, "training-one-class")
    assert store.read_json(layout.trial_metrics_key("training-one-class", "trial-00"))["status"] == "failed"
