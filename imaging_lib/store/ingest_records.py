"""The records ingest writes: study records and their series, quarantine, retrieval and key fingerprint.

* :func:`study_record` (``records/studies/<study_uid>.json``): the de-identified facts of a
  study and one :func:`series_entry` per stored series (geometry, window, modality,
  pseudonym: what prediction needs from the DICOM header); :func:`merge_series` adds or
  replaces one, and :func:`series_metadata` gives back what ``Store.read_volume`` re-attaches.
* :func:`quarantine_record`: why an input was refused (never its bytes nor its name).
* :func:`retrieval_record`: an archive series retrieved whole (the key is a keyed hash of its
  original UIDs, so a resumed ingest skips it).
* :func:`key_fingerprint_record`: the fingerprint of the store's de-identification key.

Like :mod:`.records`, the builders are pure and every record carries a
:func:`~imaging_lib.store.records.provenance`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .records import Record, provenance

__all__ = [
    "key_fingerprint_record",
    "merge_series",
    "quarantine_record",
    "retrieval_record",
    "series_entry",
    "series_metadata",
    "study_record",
]


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
        Who ingested; default :func:`~imaging_lib.store.records.current_user`.
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
