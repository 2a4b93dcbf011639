"""One study through the model: the task a batch job runs on a Dask worker.

:func:`process_study` reads a stored study, preprocesses and predicts every slice in
batches as the model's spec says (:func:`imaging_lib.inference.predict`), explains the
most suspicious slice with LIME, and writes the explanation heat map and then the result
record, each atomically under keys fixed by the study and the model id. Running it twice
gives the same objects under the same keys, so a task recomputed after a worker died
overwrites and never duplicates; because the record is written last, a result record
always points at a complete heat map.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import layout

if TYPE_CHECKING:
    from .store import Store

__all__ = ["DEFAULT_PARAMS", "pipeline_params", "process_study"]

#: Parameters of :func:`process_study` and their defaults.
DEFAULT_PARAMS: dict[str, Any] = {
    "batch_size": 10,  # slices per forward pass (about 10 was fastest on CPU)
    "num_samples": 1000,  # LIME perturbations, predicted in batches of batch_size
    "random_state": 0,  # LIME's draws: same seed, same explanation
    "segmentation": "quickshift",  # LIME superpixels: "quickshift" or "slic"
}


def pipeline_params(params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return :data:`DEFAULT_PARAMS` updated with ``params``, checked.

    Parameters
    ----------
    params : mapping, optional
        Some of ``batch_size``, ``num_samples``, ``random_state``, ``segmentation``.

    Returns
    -------
    dict

    Raises
    ------
    ValueError
        If a parameter is unknown or out of range.
    """
    resolved = {**DEFAULT_PARAMS, **(params or {})}
    unknown = sorted(set(resolved) - set(DEFAULT_PARAMS))
    if unknown:
        raise ValueError(f"unknown pipeline parameter(s) {unknown}; known: {sorted(DEFAULT_PARAMS)}")
    for name in ("batch_size", "num_samples"):
        if not isinstance(resolved[name], int) or resolved[name] < 1:
            raise ValueError(f"pipeline parameter {name} must be a positive integer, not {resolved[name]!r}")
    if resolved["segmentation"] not in ("quickshift", "slic"):
        raise ValueError(f"pipeline parameter segmentation must be 'quickshift' or 'slic', not {resolved['segmentation']!r}")
    return resolved


def process_study(
    study_uid: str, store_url: str | Store, model_uri: str, params: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Predict and explain one stored study; write its heat map and result record.

    Parameters
    ----------
    study_uid : str
        A study in the store's catalog.
    store_url : str or Store
        The store's URL, or the store itself (keeps its storage options, e.g. a token).
    model_uri : str
        The model (see :func:`imaging_lib.models.load_model`); loaded once per process.
    params : mapping, optional
        See :data:`DEFAULT_PARAMS`.

    Returns
    -------
    dict
        ``study_uid``, ``model_id``, ``label``, ``probability``, ``most_suspicious_slice``,
        ``result_key`` and ``explanation_key``.

    Raises
    ------
    imaging_lib.errors.MissingRecord
        If the study or its volume is not in the store.
    imaging_lib.errors.UnreadableImage
        If the stored volume is not readable NIfTI.
    ValueError
        If ``params`` is invalid.
    """
    from .explain import explain_slice
    from .inference import predict
    from .models import load_model
    from .store import Store

    resolved = pipeline_params(params)
    store = store_url if isinstance(store_url, Store) else Store(store_url)
    study = store.read_json(layout.study_record_key(study_uid))
    volume = store.read_volume(study["volume_key"])
    model = load_model(model_uri)
    prediction = predict(volume, model, batch_size=resolved["batch_size"])
    explanation = explain_slice(
        volume,
        prediction.most_suspicious_slice,
        model,
        num_samples=resolved["num_samples"],
        random_state=resolved["random_state"],
        segmentation=resolved["segmentation"],
        batch_size=resolved["batch_size"],
    )
    explanation_key = layout.explanation_key(study_uid, model.model_id)
    result_key = layout.result_record_key(study_uid, model.model_id)
    store.write_volume(explanation_key, explanation.to_volume(volume))
    record = {
        **prediction.to_record(),
        "study_uid": study_uid,
        "series_uid": study.get("series_uid"),
        "patient_pseudonym": study.get("patient_pseudonym"),
        "modality": study.get("modality"),
        "volume_key": study["volume_key"],
        "explanation_key": explanation_key,
        "explanation": explanation.to_record(),
        "params": resolved,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
    }
    store.write_json(result_key, record)
    return {
        "study_uid": study_uid,
        "model_id": model.model_id,
        "label": prediction.label,
        "probability": prediction.probability,
        "most_suspicious_slice": prediction.most_suspicious_slice,
        "result_key": result_key,
        "explanation_key": explanation_key,
    }
