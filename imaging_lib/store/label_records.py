"""The records of review and training data: label versions and the training manifest, beside :mod:`.records`.

* :func:`label_record`: one version of a study's labels (``records/labels/<study_uid>/<version>.json``),
  never overwritten: the study label, slice labels, the verdict on a prediction
  (:func:`review_decision`), the mask (:func:`label_mask_entry`), who, when, with which
  tool, from which parent, and the SHA-256 of its content (:func:`canonical_sha256`).
* :func:`training_manifest`: what training reads, one :func:`training_entry` per study
  (its latest accepted version), what was skipped and why, class counts and a content hash.

Like :mod:`.records`, the builders are pure and every record carries a
:func:`~imaging_lib.store.records.provenance`.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from . import layout
from .records import Record, provenance

__all__ = [
    "LABEL_CONTENT_FIELDS",
    "canonical_sha256",
    "label_mask_entry",
    "label_record",
    "review_decision",
    "training_entry",
    "training_manifest",
]

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
        Default :func:`~imaging_lib.store.records.current_user`.
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
