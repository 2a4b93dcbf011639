"""The prediction batch: one study through the model per Dask task, and the batch that runs them.

:func:`process_study` reads a stored study, preprocesses and predicts every slice in
batches as the model's spec says (:func:`imaging_lib.science.inference.predict`), explains the
most suspicious slice with LIME, and writes the explanation heat map and then the result
record, each atomically under keys fixed by the study and the model id. Running it twice
gives the same objects under the same keys, so a task recomputed after a worker died
overwrites and never duplicates; because the record is written last, a result record
always points at a complete heat map.

:func:`run_batch` runs :func:`process_study` on many studies through
:func:`imaging_lib.jobs.runner.run_tasks`, skipping the studies that already have a result
of the same model (id and checksum). Without a model URI it runs the store's default model
(:func:`imaging_lib.models.registry.default_model`: the last one promoted, pinned to its
registered checksum, else the shipped demo model).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..store import layout, records
from .runner import Job, run_tasks

if TYPE_CHECKING:
    from distributed import Client

    from ..store.objects import Store

__all__ = [
    "DEFAULT_PARAMS",
    "model_identity",
    "pipeline_params",
    "process_study",
    "resolve_study_uids",
    "run_batch",
    "studies_with_result",
]

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
        raise ValueError(
            f"pipeline parameter segmentation must be 'quickshift' or 'slic', not {resolved['segmentation']!r}"
        )
    return resolved


def process_study(
    study_uid: str,
    store_url: str | Store,
    model_uri: str,
    params: Mapping[str, Any] | None = None,
    *,
    model_checksum: str,
    created_by: str | None = None,
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
    model_checksum : str
        The model's checksum as the driver verified it (:attr:`~imaging_lib.models.LoadedModel.checksum`);
        the model loads only if its spec and weights still have it.
    created_by : str, optional
        Who submitted the batch (recorded in the result; a worker's own user is not who acts).

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
    imaging_lib.errors.ModelChecksumMismatch
        If no checksum is given, or the model's spec or weights changed since it was verified.
    ValueError
        If ``params`` is invalid.
    """
    from ..models import load_pinned_model
    from ..science.explain import explain_slice
    from ..science.inference import predict
    from ..store.objects import Store

    resolved = pipeline_params(params)
    store = store_url if isinstance(store_url, Store) else Store(store_url)
    study = records.read_record(store, layout.study_record_key(study_uid))
    volume = store.read_volume(study["volume_key"])
    model = load_pinned_model(model_uri, model_checksum)
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
    record = records.result_record(
        prediction.to_record(),
        study=study,
        explanation_key=explanation_key,
        explanation=explanation.to_record(),
        parameters=resolved,
        created_by=created_by,
    )
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


def model_identity(model_uri: str) -> tuple[str, str]:
    """The ``(model_id, model_checksum)`` that results of the model at ``model_uri`` are stored under.

    This is the model's half of "has a result" (:meth:`Catalog.studies_with_result
    <imaging_lib.store.catalog.Catalog.studies_with_result>`); the batch and the job
    monitor both ask it. The model is loaded and verified once per process.

    Raises
    ------
    imaging_lib.errors.ModelNotFound, imaging_lib.errors.ModelChecksumMismatch, imaging_lib.errors.InvalidModelSpec
        As :func:`imaging_lib.models.load_model`.
    """
    from ..models import load_model

    model = load_model(model_uri)
    return model.model_id, model.checksum


def studies_with_result(store: Store, study_uids: Sequence[str], model_id: str, model_checksum: str) -> set[str]:
    """The studies whose result of this model (id *and* checksum) is stored; see
    :meth:`imaging_lib.store.catalog.Catalog.studies_with_result`."""
    from ..store.catalog import Catalog

    return Catalog(store).studies_with_result(model_id, model_checksum, study_uids)


def resolve_study_uids(study_uids: Sequence[str] | str, store: Store) -> list[str]:
    """Return ``study_uids`` as a list, or every study in the store for ``"all"``.

    Raises
    ------
    ValueError
        If ``study_uids`` is a string other than ``"all"``.
    """
    from ..store.catalog import Catalog

    if not isinstance(study_uids, str):
        return list(study_uids)
    if study_uids != "all":
        raise ValueError(f'study_uids must be a sequence of UIDs or "all", not {study_uids!r}')
    return Catalog(store).study_uids()


def run_batch(
    study_uids: Sequence[str] | str,
    store: Store,
    model_uri: str | None = None,
    client: Client | None = None,
    retries: int = 2,
    params: Mapping[str, Any] | None = None,
    *,
    resume: bool = True,
) -> Job:
    """Predict and explain each study on Dask, one :func:`~imaging_lib.jobs.batch.process_study` task each.

    Parameters
    ----------
    study_uids : sequence of str or ``"all"``
        The studies; ``"all"`` is every study in the store's catalog.
    store : Store
        The store holding the studies; results and the job record go there too.
    model_uri : str, optional
        Model to run (see :func:`imaging_lib.models.load_model`); default the store's
        default model (:func:`imaging_lib.models.registry.default_model`).
    client : distributed.Client, optional
        Default :func:`get_client()`.
    retries : int
        Retries of a study after a transient error.
    params : mapping, optional
        Pipeline parameters (:data:`imaging_lib.jobs.batch.DEFAULT_PARAMS` fills the rest).
    resume : bool
        Skip studies that already have a result of this model id and checksum.

    Returns
    -------
    Job

    Raises
    ------
    ValueError
        If ``params`` names an unknown parameter.
    """
    from ..models.registry import resolve_model

    resolved = pipeline_params(params)
    study_uids = resolve_study_uids(study_uids, store)
    model = resolve_model(store, model_uri)
    done = studies_with_result(store, study_uids, model.model_id, model.checksum) if resume else set()
    task = functools.partial(
        process_study,
        store_url=store,
        model_uri=model.uri,
        params=resolved,
        model_checksum=model.checksum,
        created_by=records.current_user(),
    )
    meta = {
        "model_uri": model.uri,
        "model_id": model.model_id,
        "model_checksum": model.checksum,
        "pipeline": resolved,
        "store": store.url,
    }
    return run_tasks("batch", study_uids, task, store, client=client, retries=retries, skipped=done, meta=meta)
