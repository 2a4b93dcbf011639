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

The builders are pure: they take values and return dicts; the caller writes them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .._version import __version__
from . import layout

__all__ = [
    "LABEL_CONTENT_FIELDS",
    "canonical_sha256",
    "current_user",
    "export_record",
    "job_record",
    "key_fingerprint_record",
    "label_mask_entry",
    "label_record",
    "merge_series",
    "normalise",
    "now",
    "provenance",
    "quarantine_record",
    "read_record",
    "report_record",
    "result_record",
    "retrieval_record",
    "review_decision",
    "segmentation_record",
    "series_entry",
    "series_metadata",
    "study_record",
    "training_entry",
    "training_manifest",
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


# ---------------------------------------------------------------------------- studies
def series_entry(
    volume: Any,
    *,
    series_uid: str,
    volume_key: str,
    modality: str,
    description: str,
    file_count: int,
) -> Record:
    """The entry of one series in its study record: geometry, where its volume is, and its window.

    Parameters
    ----------
    volume : Volume
        The series read back from the stored files (its metadata gives the window).
    series_uid, volume_key, modality, description : str
    file_count : int
        Files (instances) the series was read from.
    """
    metadata = volume.metadata
    return {
        "series_uid": series_uid,
        "modality": modality,
        "description": description,
        "shape": list(volume.shape),
        "spacing": [round(s, 6) for s in volume.spacing],
        "orientation": "".join(volume.orientation),
        "dtype": str(volume.array.dtype),
        "volume_key": volume_key,
        "file_count": file_count,
        "window_center": metadata.get("window_center"),
        "window_width": metadata.get("window_width"),
        "rescale_type": metadata.get("rescale_type", ""),
        "warnings": list(metadata.get("warnings", [])),
    }


def _voxels(series: Mapping[str, Any]) -> int:
    count = 1
    for size in series["shape"]:
        count *= int(size)
    return count


def merge_series(record: Mapping[str, Any] | None, series: Mapping[str, Any]) -> list[Record]:
    """The series of a study once ``series`` is added to (or replaces its twin in) ``record``."""
    others = [dict(s) for s in (record or {}).get("series", []) if s["series_uid"] != series["series_uid"]]
    return sorted([*others, dict(series)], key=lambda s: s["series_uid"])


def study_record(
    study_uid: str,
    *,
    patient_pseudonym: str,
    study_date: str | None,
    series: Sequence[Mapping[str, Any]],
    sources: Iterable[str],
    deidentification: Sequence[str],
    created_by: str | None = None,
) -> Record:
    """The record of a study; its largest series is its primary one (what the catalog shows).

    Parameters
    ----------
    study_uid : str
        De-identified Study Instance UID.
    patient_pseudonym : str
        The patient's pseudonym (``ANON-...``), or ``""`` for NIfTI inputs.
    study_date : str or None
        Shifted study date as ``YYYY-MM-DD``.
    series : sequence of dict
        :func:`series_entry` of every series (at least one).
    sources : iterable of str
        Keyed hashes of every source file, never a bare SHA-256 (:mod:`imaging_lib.ingestion`).
    deidentification : sequence of str
        The de-identification method codes applied (CID 7050).
    created_by : str, optional
        Who ingested; default :func:`current_user`.
    """
    primary = max(series, key=lambda s: (_voxels(s), s["series_uid"]))
    return {
        "study_uid": study_uid,
        "patient_pseudonym": patient_pseudonym,
        "modality": primary["modality"],
        "study_date": study_date,
        "description": primary["description"],
        "series_uid": primary["series_uid"],
        "shape": list(primary["shape"]),
        "spacing": list(primary["spacing"]),
        "volume_key": primary["volume_key"],
        "series": [dict(s) for s in series],
        "provenance": provenance(
            created_by=created_by, sources=sorted(set(sources)), deidentification=list(deidentification)
        ),
    }


def series_metadata(study: Mapping[str, Any], volume_key: str) -> Record:
    """What prediction needs from the header of the series stored at ``volume_key``.

    The keys are those the DICOM reader gives a volume's metadata (``modality``,
    ``window_center``...), so a volume read from the store predicts exactly as the same
    volume read from its files.

    Parameters
    ----------
    study : mapping
        The study record (normalised).
    volume_key : str
        The key of one of its series' volumes.

    Returns
    -------
    dict
        Empty if the key is not one of the study's series.
    """
    for series in study.get("series", []):
        if series.get("volume_key") == volume_key:
            return {
                "study_uid": study.get("study_uid"),
                "series_uid": series.get("series_uid"),
                "patient_id": study.get("patient_pseudonym"),
                "modality": series.get("modality", ""),
                "window_center": series.get("window_center"),
                "window_width": series.get("window_width"),
                "rescale_type": series.get("rescale_type", ""),
            }
    return {}


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


# ---------------------------------------------------------------------------- labels
LABEL_CONTENT_FIELDS = ("study_label", "slice_labels", "slice_axis", "decision", "mask")
"""What a label version says; the rest of its record says who, when, with what tool and from which parent."""


def canonical_sha256(value: Any) -> str:
    """SHA-256 of ``value`` as canonical JSON (sorted keys, no spaces): equal content, equal hash."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def review_decision(verdict: str, *, result_key: str, result: Mapping[str, Any], comment: str) -> Record:
    """A verdict (``"accepted"``/``"rejected"``) on one prediction: the result judged, its model and time.

    The result's model checksum and time are kept, so a newer result of the study shows as
    not yet reviewed.
    """
    return {
        "verdict": verdict,
        "result_key": result_key,
        "model_id": result.get("model_id"),
        "model_checksum": result.get("model_checksum"),
        "predicted_label": result.get("label"),
        "probability": result.get("probability"),
        "result_created_at": (result.get("provenance") or {}).get("created_at"),
        "comment": comment,
    }


def label_mask_entry(
    *, key: str, sha256: str, shape: Sequence[int], voxel_count: int, reviewed: bool, source: str | None
) -> Record:
    """A label version's mask: its key, SHA-256 of its ``uint8`` C-order voxels, shape, size, reviewed flag, origin."""
    return {
        "key": key,
        "sha256": sha256,
        "shape": [int(n) for n in shape],
        "voxel_count": int(voxel_count),
        "reviewed": bool(reviewed),
        "source": source,
    }


def label_record(
    *,
    study_uid: str,
    version: str,
    parent: str | None,
    branch: bool,
    tool: str,
    content: Mapping[str, Any],
    comment: str = "",
    reverted_from: str | None = None,
    created_by: str | None = None,
) -> Record:
    """One version of a study's labels (:mod:`imaging_lib.store.labels` writes them).

    Parameters
    ----------
    study_uid, version : str
        ``version`` is ``v000001``, ``v000002``... on the main line, ``v000003-branch-1a2b3c4d``
        for an edit kept aside because another version was saved first.
    parent : str or None
        The version it was edited from (None for a study's first).
    branch : bool
    tool : str
        What made it: ``"review-panel"``, ``"brush"``, ``"region-growing"``, ``"python"``...
    content : mapping
        :data:`LABEL_CONTENT_FIELDS`: ``study_label`` (``"lesion"``, ``"no_lesion"`` or None),
        ``slice_labels`` (slice index as a string -> label), ``slice_axis``, ``decision``
        (:func:`review_decision` or None), ``mask`` (:func:`label_mask_entry` or None).
    comment : str
    reverted_from : str, optional
        The version whose content it restores.
    created_by : str, optional
        Default :func:`current_user`.
    """
    body = {name: content.get(name) for name in LABEL_CONTENT_FIELDS}
    return {
        "study_uid": study_uid,
        "version": version,
        "parent": parent,
        "branch": bool(branch),
        "tool": tool,
        "comment": comment,
        "reverted_from": reverted_from,
        **body,
        "content_sha256": canonical_sha256(body),
        "provenance": provenance({"tool": tool}, created_by=created_by),
    }


def training_entry(label: Mapping[str, Any], study: Mapping[str, Any], *, latest_version: str) -> Record:
    """One study of a training manifest: its accepted label version (``label``) and its study record's facts.

    ``split_group`` is the patient pseudonym, or ``study:<uid>`` when the patient is unknown
    (NIfTI inputs): split on it, never on slices.
    """
    mask = label.get("mask") or {}
    pseudonym = str(study.get("patient_pseudonym") or "")
    made = label.get("provenance") or {}
    return {
        "study_uid": label["study_uid"],
        "patient_pseudonym": pseudonym,
        "split_group": pseudonym or f"study:{label['study_uid']}",
        "version": label["version"],
        "latest_version": latest_version,
        "record_key": layout.label_record_key(label["study_uid"], label["version"]),
        "study_label": label.get("study_label"),
        "slice_labels": dict(label.get("slice_labels") or {}),
        "slice_axis": label.get("slice_axis"),
        "mask_key": mask.get("key"),
        "mask_sha256": mask.get("sha256"),
        "content_sha256": label.get("content_sha256"),
        "volume_key": study.get("volume_key"),
        "shape": list(study.get("shape") or []),
        "created_by": made.get("created_by"),
        "created_at": made.get("created_at"),
    }


def training_manifest(
    entries: Sequence[Mapping[str, Any]], skipped: Sequence[Mapping[str, Any]], *, store_url: str
) -> Record:
    """The manifest training reads: :func:`training_entry` per study, what was skipped and why, class counts.

    ``manifest_sha256`` hashes the entries alone, so the same labels give the same hash
    whenever they are exported. An empty or single-class set is stated by ``class_counts``;
    training refuses it.
    """
    ordered = sorted((dict(entry) for entry in entries), key=lambda entry: entry["study_uid"])
    slice_labels = (label for entry in ordered for label in entry["slice_labels"].values())
    return {
        "format": "imaging-lab/training-manifest",
        "format_version": 1,
        "store": store_url,
        "studies": len(ordered),
        "patients": len({entry["split_group"] for entry in ordered}),
        "masks": sum(1 for entry in ordered if entry.get("mask_key")),
        "class_counts": dict(sorted(Counter(str(entry["study_label"]) for entry in ordered).items())),
        "slice_class_counts": dict(sorted(Counter(str(label) for label in slice_labels).items())),
        "entries": ordered,
        "skipped": sorted((dict(item) for item in skipped), key=lambda item: str(item.get("study_uid"))),
        "manifest_sha256": canonical_sha256(ordered),
        "provenance": provenance(),
    }


# ---------------------------------------------------------------------------- jobs, reports, quarantine
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


def quarantine_record(*, error: str, reason: str, content_digest: str | None, size: int | None) -> Record:
    """Why an input was refused: the typed error's name and reason, a keyed digest and the size.

    The refused bytes and their file name are never stored: either may carry PHI.
    """
    return {
        "error": error,
        "reason": reason,
        "content_digest": content_digest,
        "size": size,
        "provenance": provenance(),
    }


def retrieval_record(
    *, study_uid: str, series_uid: str, archive: str, instances: int, stored: int, quarantined: int
) -> Record:
    """That an archive series was retrieved whole and stored (ingest skips it next time).

    Parameters
    ----------
    study_uid, series_uid : str
        Its de-identified UIDs in the store (the original ones are never stored; the
        record's key is their keyed hash).
    archive : str
        The archive's bare base URL (never with credentials).
    instances, stored, quarantined : int
        Instances received, stored, and refused.
    """
    return {
        "study_uid": study_uid,
        "series_uid": series_uid,
        "archive": archive,
        "instances": instances,
        "stored": stored,
        "quarantined": quarantined,
        "provenance": provenance(),
    }


def key_fingerprint_record(fingerprint: str, *, label: str) -> Record:
    """The fingerprint of the key a store is de-identified with (never the key itself).

    Parameters
    ----------
    fingerprint : str
        HMAC-SHA256 of ``label`` under the key, in hex (:attr:`imaging_lib.deid.key.DeidKey.fingerprint`).
    label : str
        The fixed message whose HMAC is the fingerprint.
    """
    return {"algorithm": "HMAC-SHA256", "label": label, "fingerprint": fingerprint, "provenance": provenance()}


# ---------------------------------------------------------------------------- reading
_RENAMED = {  # old field name -> today's, per record kind (None: every kind)
    None: {"patient_id": "patient_pseudonym", "params": "parameters", "model_sha256": "model_checksum"},
    "result_record": {"heatmap_key": "explanation_key"},
    "segmentation_record": {"segmentation_key": "mask_key"},
    "quarantine_record": {"content_sha256": "content_digest"},
}
_PROVENANCE_RENAMED = {"ingested_at": "created_at", "source_sha256": "sources"}
_JOB_STATE = frozenset(
    {
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
    }
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
