"""The records of training and the model registry: one shape per kind, beside :mod:`.records`.

* :func:`model_record`: a registered model (``records/models/<model_id>.json``): where its
  spec and weights are in the store, its checksum, the decision rule it applies to studies,
  held-out metrics (slice AUC, study sensitivity and specificity at its own threshold), ROC
  points, the studies of each split, lineage (training manifest hash, parent model,
  parameters, code version), the training history and a generated model card.
* :func:`promotion_record`: one promotion to the store's default model (who, when, which
  model, what was the default before). Promotions are never overwritten; the newest wins.
* :func:`cancellation_record`: a request to stop a training job (who, when, why).
* :func:`trial_metrics`: the JSON metrics a trial keeps beside its checkpoints.

Like :mod:`.records`, the builders are pure and every record carries a
:func:`~imaging_lib.store.records.provenance`. No field is named ``parameters`` at the
top level (:func:`~imaging_lib.store.records.normalise` would move it into provenance).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from .records import Record, now, provenance

__all__ = [
    "cancellation_record",
    "model_record",
    "new_promotion_id",
    "promotion_record",
    "trial_metrics",
]


def model_record(
    model_id: str,
    *,
    name: str,
    model_checksum: str,
    spec_key: str,
    weights_key: str,
    architecture: Mapping[str, Any],
    decision: Mapping[str, Any],
    metrics: Mapping[str, Any],
    roc: Mapping[str, Any],
    data: Mapping[str, Any],
    lineage: Mapping[str, Any],
    training: Mapping[str, Any],
    card: str,
    created_by: str | None = None,
) -> Record:
    """The record of a registered model.

    Parameters
    ----------
    model_id : str
        ``<name>-<first 12 hex digits of the checksum>`` (:attr:`LoadedModel.model_id`).
    name, model_checksum : str
    spec_key, weights_key : str
        Its files in the store (``models/<model_id>/model.json`` and ``model.pt``).
    architecture : mapping
        ``{"name": builder name, "params": builder keywords}``.
    decision : mapping
        :meth:`~imaging_lib.models.decision.DecisionRule.to_dict`.
    metrics : mapping
        Held-out numbers: ``validation_slice_auc``, ``test_slice_auc``, ``study_threshold``,
        ``study_sensitivity``, ``study_specificity`` and the study counts.
    roc : mapping
        ``{"slice": roc_points, "study": roc_points}`` on the held-out studies.
    data : mapping
        ``manifest_sha256``, ``splits`` (split -> study UIDs), slice and study counts.
    lineage : mapping
        ``manifest_sha256``, ``parent_model``, ``training_parameters``, ``code_version``, ``source``.
    training : mapping
        ``job_id``, ``trial_id``, ``epochs`` (per-epoch metrics), ``best_epoch``, ``stopped``.
    card : str
        The model card (Markdown).
    created_by : str, optional
        Who trained or registered it.
    """
    return {
        "model_id": model_id,
        "name": name,
        "model_checksum": model_checksum,
        "spec_key": spec_key,
        "weights_key": weights_key,
        "architecture": dict(architecture),
        "decision": dict(decision),
        "metrics": dict(metrics),
        "roc": dict(roc),
        "data": dict(data),
        "lineage": dict(lineage),
        "training": dict(training),
        "card": card,
        "provenance": provenance(created_by=created_by),
    }


def new_promotion_id() -> str:
    """A promotion id that sorts by time: ``20260101T120000123456-1a2b3c4d``."""
    return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}"


def promotion_record(
    model_id: str,
    *,
    model_checksum: str,
    previous_model_id: str | None,
    comment: str,
    created_by: str | None = None,
) -> Record:
    """One promotion of ``model_id`` (pinned by its checksum) to the store's default model."""
    return {
        "model_id": model_id,
        "model_checksum": model_checksum,
        "previous_model_id": previous_model_id,
        "comment": comment,
        "provenance": provenance(created_by=created_by),
    }


def cancellation_record(job_id: str, *, reason: str, created_by: str | None = None) -> Record:
    """A request to stop training job ``job_id``: its trials stop at their next check."""
    return {"job_id": job_id, "reason": reason, "provenance": provenance(created_by=created_by)}


def trial_metrics(
    job_id: str,
    trial_id: str,
    *,
    status: str,
    parameters: Mapping[str, Any],
    epochs: Sequence[Mapping[str, Any]],
    best_epoch: int | None,
    resumed_from: Sequence[int],
    stopped: str | None = None,
    model_id: str | None = None,
    error: Mapping[str, str] | None = None,
) -> Record:
    """A trial's metrics: one entry per epoch (``epoch``, ``loss``, ``val_auc``, ``seconds``...).

    Parameters
    ----------
    job_id, trial_id : str
    status : str
        ``running``, ``finished``, ``cancelled`` or ``failed``.
    parameters : mapping
        The trial's training parameters.
    epochs : sequence of mapping
        Per-epoch metrics, one entry per epoch, in order.
    best_epoch : int or None
        The epoch whose weights are kept.
    resumed_from : sequence of int
        The checkpoints (epochs) the trial was resumed from after its worker died.
    stopped : str, optional
        Why training ended before the last epoch (early stopping, cancel).
    model_id : str, optional
        The model registered at the end.
    error : mapping, optional
        ``{"error_type", "error"}`` of a failed trial.
    """
    return {
        "job_id": job_id,
        "trial_id": trial_id,
        "status": status,
        "training_parameters": dict(parameters),
        "epochs": [dict(entry) for entry in epochs],
        "best_epoch": best_epoch,
        "resumed_from": [int(epoch) for epoch in resumed_from],
        "stopped": stopped,
        "model_id": model_id,
        "error": dict(error) if error else None,
        "updated_at": now(),
    }
