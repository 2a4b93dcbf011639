"""Every record the platform writes: one shape per kind, one name per field, one provenance.

Records are JSON objects under ``records/`` (keys from :mod:`imaging_lib.store.layout`).
Each is built by one function of this module and carries a ``provenance`` object made by
:func:`provenance`: the library version, when, who, and the parameters that made it
(plus, per kind, the model or the sources). Field names are the same in every kind:
``patient_pseudonym``, ``explanation_key``, ``mask_key``, ``parameters``, ``created_at``.

Stores written by older versions still read: :func:`normalise` maps their field names
(``params``, ``patient_id``, ``heatmap_key``, ``segmentation_key``, ``ingested_at``,
``source_sha256``, provenance fields at the top level) onto today's, and every reader
(:class:`~imaging_lib.store.catalog.Catalog`, :func:`read_record`) goes through it.

The builders are pure: they take values and return dicts; the caller writes them. What
ingest writes (study records and their series, quarantine, retrieval and key-fingerprint
records) is built in :mod:`.ingest_records`, label versions and the training manifest in
:mod:`.label_records`, the records of training and the model registry in
:mod:`.model_records`, all with this module's provenance.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from .._version import __version__
from . import layout

__all__ = [
    "current_user",
    "export_record",
    "job_record",
    "normalise",
    "now",
    "provenance",
    "read_record",
    "report_record",
    "result_record",
    "segmentation_record",
]

Record = dict[str, Any]

_PROVENANCE_FIELDS = ("library_version", "created_at", "created_by", "parameters")


def now() -> str:
    """The current UTC time as an ISO 8601 string with milliseconds (what records store)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def current_user() -> str:
    """Who is acting: the Jupyter(Hub) user when there is one, else the operating-system user.

    See :func:`imaging_lib.identity.user_name` (a team kernel's user is set by the server).
    """
    from ..identity import user_name

    return user_name()


def provenance(parameters: Mapping[str, Any] | None = None, *, created_by: str | None = None, **extra: Any) -> Record:
    """The provenance of a new record: library version, time, user, parameters and ``extra``.

    Parameters
    ----------
    parameters : mapping, optional
        The parameters that made the record (JSON-able).
    created_by : str, optional
        Who made it; default :func:`current_user`.
    **extra
        Kind-specific facts, e.g. ``sources`` (keyed hashes of source files) or
        ``function`` (what computed it).

    Returns
    -------
    dict
    """
    return {
        "library_version": __version__,
        "created_at": now(),
        "created_by": created_by or current_user(),
        "parameters": dict(parameters or {}),
        **extra,
    }


# ---------------------------------------------------------------------------- results
def result_record(
    prediction: Mapping[str, Any],
    *,
    study: Mapping[str, Any],
    explanation_key: str,
    explanation: Mapping[str, Any],
    parameters: Mapping[str, Any],
    created_by: str | None = None,
) -> Record:
    """The record of one model's prediction and explanation of one study.

    Parameters
    ----------
    prediction : mapping
        :meth:`imaging_lib.science.inference.Prediction.to_record`.
    study : mapping
        The study record.
    explanation_key : str
        Where the LIME heat map is stored.
    explanation : mapping
        :meth:`imaging_lib.science.explain.Explanation.to_record`.
    parameters : mapping
        The pipeline parameters (:data:`imaging_lib.jobs.batch.DEFAULT_PARAMS`).
    created_by : str, optional
        Who ran it; default :func:`current_user`.
    """
    return {
        **{key: value for key, value in prediction.items() if key != "provenance"},
        "study_uid": study["study_uid"],
        "series_uid": study.get("series_uid"),
        "patient_pseudonym": study.get("patient_pseudonym"),
        "modality": study.get("modality"),
        "volume_key": study["volume_key"],
        "explanation_key": explanation_key,
        "explanation": dict(explanation),
        "provenance": provenance(parameters, created_by=created_by),
    }


# ---------------------------------------------------------------------------- masks
def segmentation_record(
    *,
    study_uid: str,
    seg_id: str,
    mask_key: str,
    seed_ijk: Sequence[float] | None,
    quantification: Mapping[str, Any],
    method: str,
    parameters: Mapping[str, Any],
    created_by: str | None = None,
) -> Record:
    """The record of a stored mask: where it is, how it was made, what it measures.

    Parameters
    ----------
    study_uid, seg_id, mask_key : str
    seed_ijk : sequence of float or None
        The clicked seed of a grown region (None for a mask drawn by hand).
    quantification : mapping
        :func:`imaging_lib.science.segment.quantify`.
    method : str
        What made the mask, e.g. ``"imaging_lib.science.segment.grow_region"``.
    parameters : mapping
        Its parameters.
    created_by : str, optional
        Default :func:`current_user`.
    """
    return {
        "study_uid": study_uid,
        "seg_id": seg_id,
        "mask_key": mask_key,
        "seed_ijk": None if seed_ijk is None else [float(v) for v in seed_ijk],
        "quantification": dict(quantification),
        "method": method,
        "provenance": provenance(parameters, created_by=created_by),
    }


# ---------------------------------------------------------------------------- jobs, reports, exports
def job_record(
    job_id: str,
    kind: str,
    *,
    state: Mapping[str, Any],
    parameters: Mapping[str, Any],
    created_at: str,
    created_by: str | None = None,
) -> Record:
    """The live record of a job.

    Parameters
    ----------
    job_id, kind : str
    state : mapping
        What changes while it runs: ``status``, ``updated_at``, ``finished_at``, ``counts``,
        ``errors``, ``items``, timing and where it runs.
    parameters : mapping
        What the job was started with (model, pipeline parameters, store).
    created_at : str
        When it was submitted (the record is rewritten while it runs; this stays).
    created_by : str, optional
        Default :func:`current_user`.
    """
    return {
        "job_id": job_id,
        "kind": kind,
        **state,
        "provenance": {**provenance(parameters, created_by=created_by), "created_at": created_at},
    }


def report_record(
    study_uid: str,
    *,
    template: str,
    keys: Mapping[str, str],
    parameters: Mapping[str, Any],
    timings: Mapping[str, float],
    created_by: str | None = None,
) -> Record:
    """The record of a report: its subject, template, stored files (format -> key) and timings."""
    return {
        "study_uid": study_uid,
        "template": template,
        "keys": dict(keys),
        "timings": {name: float(seconds) for name, seconds in timings.items()},
        "provenance": provenance(parameters, created_by=created_by),
    }


def export_record(
    study_uid: str,
    *,
    export_id: str,
    destination: Mapping[str, Any],
    objects: Sequence[Mapping[str, Any]],
    skipped: Sequence[Mapping[str, Any]],
    parameters: Mapping[str, Any],
    created_by: str | None = None,
) -> Record:
    """The record of one export of a study's results as DICOM objects.

    Parameters
    ----------
    study_uid, export_id : str
    destination : mapping
        ``{"kind": "dicomweb", "url": ...}`` (the archive's address, never with credentials)
        or ``{"kind": "folder", "path": ...}``.
    objects : sequence of mapping
        One per object sent or written: ``kind`` (``seg``, ``sr``, ``pmap``, ``sc``,
        ``source``), the SOP Class, Series and SOP Instance UIDs, ``derived_from`` (the
        record key it was made from), ``sha256`` and ``size`` of its encoded bytes.
    skipped : sequence of mapping
        Formats asked for but not made, with ``reason``.
    parameters : mapping
        What the export was asked for (formats, options).
    created_by : str, optional
        Default :func:`current_user`.
    """
    return {
        "study_uid": study_uid,
        "export_id": export_id,
        "destination": dict(destination),
        "objects": [dict(entry) for entry in objects],
        "skipped": [dict(entry) for entry in skipped],
        "provenance": provenance(parameters, created_by=created_by),
    }


# ---------------------------------------------------------------------------- reading
_RENAMED = {  # old field name -> today's, per record kind (None: every kind)
    None: {"patient_id": "patient_pseudonym", "params": "parameters", "model_sha256": "model_checksum"},
    "result_record": {"heatmap_key": "explanation_key"},
    "segmentation_record": {"segmentation_key": "mask_key"},
    "quarantine_record": {"content_sha256": "content_digest"},
}
_PROVENANCE_RENAMED = {"ingested_at": "created_at", "source_sha256": "sources"}
_JOB_STATE = frozenset(
    (
        "job_id",
        "kind",
        "status",
        "updated_at",
        "finished_at",
        "counts",
        "errors",
        "items",
        "elapsed_seconds",
        "throughput_per_minute",
        "eta_seconds",
        "dashboard_link",
        "scheduler",
        "driver",
        "metrics",
        "provenance",
    )
)


def normalise(kind: str, record: Mapping[str, Any]) -> Record:
    """Map a record of any version onto today's field names (idempotent).

    Parameters
    ----------
    kind : str
        The record's kind (:data:`imaging_lib.store.layout.RECORD_KINDS`).
    record : mapping
        As read from the store.

    Returns
    -------
    dict
        A new dict: renamed fields, provenance fields moved under ``provenance``.
    """
    result = dict(record)
    for table in (_RENAMED[None], _RENAMED.get(kind, {})):
        for old, new in table.items():
            if old in result:
                value = result.pop(old)
                result.setdefault(new, value)
    found = dict(result.get("provenance") or {})
    for old, new in _PROVENANCE_RENAMED.items():
        if old in found:
            found.setdefault(new, found.pop(old))
    for name in _PROVENANCE_FIELDS:
        if name in result:
            found.setdefault(name, result.pop(name))
    if kind == "job_record":  # old job records spread what they were started with over the top level
        started_with = {key: result.pop(key) for key in list(result) if key not in _JOB_STATE}
        found["parameters"] = {**started_with, **dict(found.get("parameters") or {})}
    if found:
        result["provenance"] = found
    return result


def read_record(store: Any, key: str) -> Record:
    """Read the record at ``key`` and :func:`normalise` it by the kind its key names.

    Raises
    ------
    ValueError
        If ``key`` is not a record key of the layout.
    imaging_lib.errors.MissingRecord
        If it does not exist.
    imaging_lib.errors.UnreadableRecord
        If it is not a JSON object.
    """
    from ..errors import UnreadableRecord

    parsed = layout.parse(key)
    if parsed is None or parsed.kind not in layout.RECORD_KINDS:
        raise ValueError(f"{key!r} is not a record key")
    data = store.read_json(key)
    if not isinstance(data, dict):
        raise UnreadableRecord(key, "not a JSON object")
    return normalise(parsed.kind, data)
