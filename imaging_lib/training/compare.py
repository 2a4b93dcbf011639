"""Two registered models on the same held-out studies: their ROC curves, AUCs and study decisions.

Each model's record lists the studies of its splits. :func:`comparison_studies` picks
studies no compared model was trained on: the first model's test studies (validation when
it had no test split) that are in no model's training split; for a model without splits
(the shipped one) the other's are used. :func:`compare_models` predicts them with
each model exactly as the batch does (:func:`imaging_lib.science.inference.predict`, the
model's own decision rule) and scores the slices against the reviewed labels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..models.decision import roc_auc, roc_points, study_metrics
from .data import UNLABELLED, slice_targets

__all__ = ["compare_models", "comparison_studies"]


def _split(record: Mapping[str, Any], name: str) -> list[str]:
    return list(((record.get("data") or {}).get("splits") or {}).get(name) or [])


def comparison_studies(records: Sequence[Mapping[str, Any]], labelled: Sequence[str]) -> tuple[list[str], str]:
    """Studies to compare models on, and a sentence saying where they come from.

    Parameters
    ----------
    records : sequence of mapping
        The models' registry records.
    labelled : sequence of str
        Studies with reviewed labels now (the training manifest's).

    Returns
    -------
    (list of str, str)
    """
    trained_on = {uid for record in records for uid in _split(record, "train")}
    for record in records:
        held_out = _split(record, "test") or _split(record, "validation")
        if held_out:
            chosen = sorted(uid for uid in held_out if uid in set(labelled) and uid not in trained_on)
            return chosen, f"the held-out studies of {record.get('model_id')} that no compared model trained on"
    return sorted(labelled), "every reviewed study: no compared model records held-out studies"


def compare_models(store: Any, model_ids: Sequence[str], study_uids: Sequence[str] | None = None) -> dict[str, Any]:
    """Predict the same studies with each registered model and measure them.

    Parameters
    ----------
    store : Store
    model_ids : sequence of str
        Registered models.
    study_uids : sequence of str, optional
        Default :func:`comparison_studies`.

    Returns
    -------
    dict
        ``studies``, ``note`` and ``models``: model id -> ``slice_roc``, ``study_roc``
        (:func:`~imaging_lib.models.decision.roc_points`), ``slice_auc``, ``study_auc``,
        ``sensitivity``, ``specificity`` at the model's threshold, ``threshold``.

    Raises
    ------
    MissingRecord
        If a model is not registered.
    """
    from ..models.registry import load_registered_model, read_model_record
    from ..science.inference import predict
    from ..store.catalog import Catalog

    manifest = Catalog(store).training_set()
    entries = {entry["study_uid"]: entry for entry in manifest["entries"]}
    records = [read_model_record(store, model_id) for model_id in model_ids]
    note = "the studies asked for"
    if study_uids is None:
        study_uids, note = comparison_studies(records, list(entries))
    chosen = [uid for uid in study_uids if uid in entries]
    volumes = {uid: store.read_volume(entries[uid]["volume_key"]) for uid in chosen}
    masks = {uid: store.read_volume(entries[uid]["mask_key"]).array for uid in chosen if entries[uid].get("mask_key")}
    out: dict[str, Any] = {"studies": chosen, "note": note, "models": {}}
    for model_id in model_ids:
        model = load_registered_model(store, model_id)
        axis = int(model.spec.preprocessing.get("slice_axis", 2))
        scores, labels, slice_scores, targets = [], [], [], []
        for uid in chosen:
            prediction = predict(volumes[uid], model)
            scores.append(prediction.probability)
            labels.append(int(entries[uid].get("study_label") == "lesion"))
            found = slice_targets(entries[uid], masks.get(uid), len(prediction.slice_probabilities), axis)
            slice_scores.append(prediction.slice_probabilities[found != UNLABELLED])
            targets.append(found[found != UNLABELLED])
        flat_scores = np.concatenate(slice_scores) if slice_scores else np.empty(0)
        flat_targets = np.concatenate(targets) if targets else np.empty(0, np.int64)
        rule = model.spec.decision_rule
        decided = study_metrics(scores, labels, rule.threshold)
        out["models"][model_id] = {
            "threshold": rule.threshold,
            "slice_roc": roc_points(flat_scores, flat_targets),
            "study_roc": roc_points(scores, labels),
            "slice_auc": roc_auc(flat_scores, flat_targets),
            "study_auc": roc_auc(scores, labels),
            "sensitivity": decided["sensitivity"],
            "specificity": decided["specificity"],
        }
    return out
