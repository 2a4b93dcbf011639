"""What label versions say, as pure functions: version names, the main line, review status, training entries.

A study's labels are a history of versions (:mod:`imaging_lib.store.labels` writes them).
The main line is ``v000001``, ``v000002``...; an edit saved on a parent that was no longer
the latest is kept as a branch ``v000003-branch-1a2b3c4d`` beside it. The latest version
is the highest on the main line.

A version is **accepted** (fit for training) when it has a study label and its mask, if
it has one, is marked reviewed: an edit with an unchecked mask does not replace the
study's last accepted version in the training set.

A study's **review status** compares its latest version's decision with its latest
prediction: ``accepted`` or ``rejected`` when the decision judged that very result (same
key, model checksum and time), ``needs review`` when a prediction has no such decision,
``labelled`` when it has labels but no prediction, ``not reviewed`` otherwise.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from . import label_records, layout

__all__ = [
    "ACCEPTED",
    "LABELLED",
    "LABELS",
    "NEEDS_REVIEW",
    "NOT_REVIEWED",
    "REJECTED",
    "REVIEW_STATUSES",
    "VERDICTS",
    "branch_name",
    "created_at",
    "is_accepted",
    "label_versions",
    "latest_accepted",
    "latest_versions",
    "main_line",
    "newest",
    "parse_version",
    "review_counts",
    "review_status",
    "training_entries",
    "version_name",
]

LABELS = ("no_lesion", "lesion")
"""Study and slice labels: the demo model's class names."""
VERDICTS = ("accepted", "rejected")
"""What a reviewer says of a prediction."""

ACCEPTED, REJECTED, NEEDS_REVIEW = "accepted", "rejected", "needs review"
LABELLED, NOT_REVIEWED = "labelled", "not reviewed"
REVIEW_STATUSES = (NEEDS_REVIEW, ACCEPTED, REJECTED, LABELLED, NOT_REVIEWED)
"""Every review status a study can have."""

_VERSION = re.compile(r"v(\d{6,9})(-branch-[0-9a-f]{8})?")


def version_name(number: int) -> str:
    """The main-line version ``number`` (1-based): ``v000001``."""
    return f"v{number:06d}"


def branch_name(number: int) -> str:
    """A new, unique branch name for an edit that wanted to become version ``number``."""
    return f"{version_name(number)}-branch-{uuid.uuid4().hex[:8]}"


def parse_version(version: str) -> tuple[int, bool] | None:
    """``(number, is_branch)`` of a version name, or None if it is not one."""
    found = _VERSION.fullmatch(version)
    return (int(found.group(1)), found.group(2) is not None) if found else None


def created_at(record: Mapping[str, Any]) -> str:
    """When a record was made (ISO 8601 text, ``""`` if unknown)."""
    return str((record.get("provenance") or {}).get("created_at") or "")


def newest(items: Iterable[tuple[str, Mapping[str, Any]]]) -> tuple[str, Mapping[str, Any]] | None:
    """The most recently made of ``(key, record)`` pairs, or None."""
    return max(items, key=lambda item: created_at(item[1]), default=None)


def label_versions(found: Mapping[str, Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Label records by study, in history order (main line by number, each branch after the version it wanted).

    The study and version come from each record's key, whatever its body claims; keys
    that are not label versions are left out.

    Parameters
    ----------
    found : mapping
        Key -> normalised label record (``Catalog.records("label_record")``).

    Returns
    -------
    dict
        Study UID -> list of records, each with ``record_key``.
    """
    by_study: dict[str, list[tuple[tuple[int, bool, str], dict[str, Any]]]] = {}
    for key, record in found.items():
        parsed = layout.parse(key)
        number = parse_version(parsed.version) if parsed is not None and parsed.kind == "label_record" else None
        if parsed is None or number is None:
            continue
        entry = {**record, "study_uid": parsed.study_uid, "version": parsed.version, "record_key": key}
        entry["branch"] = number[1]
        by_study.setdefault(parsed.study_uid, []).append(((*number, created_at(record)), entry))
    return {uid: [entry for _, entry in sorted(items, key=lambda item: item[0])] for uid, items in by_study.items()}


def main_line(history: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The versions of one study's history that are not branches, oldest first."""
    return [record for record in history if not record.get("branch")]


def latest_versions(histories: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Mapping[str, Any]]:
    """Each study's latest version (the last of its main line), for studies that have one."""
    return {uid: main[-1] for uid, history in histories.items() if (main := main_line(history))}


def is_accepted(record: Mapping[str, Any]) -> bool:
    """Whether a version is fit for training: a known study label, and a reviewed mask if it has one."""
    mask = record.get("mask")
    slice_labels = record.get("slice_labels") or {}
    return (
        record.get("study_label") in LABELS
        and (not mask or bool(mask.get("reviewed")))
        and isinstance(slice_labels, dict)
        and all(str(k).isdigit() and v in LABELS for k, v in slice_labels.items())
    )


def latest_accepted(history: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The newest accepted version of a study's main line, or None."""
    return next((record for record in reversed(main_line(history)) if is_accepted(record)), None)


def review_status(latest: Mapping[str, Any] | None, result: tuple[str, Mapping[str, Any]] | None) -> str:
    """A study's review status from its latest label version and its latest ``(result_key, result)``.

    Returns
    -------
    str
        One of :data:`REVIEW_STATUSES`.
    """
    if result is None:
        return LABELLED if latest is not None else NOT_REVIEWED
    key, record = result
    decision = (latest or {}).get("decision") or {}
    judged = (
        decision.get("result_key") == key
        and decision.get("model_checksum") == record.get("model_checksum")
        and decision.get("result_created_at") == created_at(record)
    )
    return str(decision["verdict"]) if judged and decision.get("verdict") in VERDICTS else NEEDS_REVIEW


def review_counts(statuses: Mapping[str, str]) -> dict[str, int]:
    """Counts for the landing page: ``studies``, ``predicted`` and one per review status.

    Parameters
    ----------
    statuses : mapping
        Study UID -> :func:`review_status` of every study.
    """
    counts = {"studies": len(statuses)}
    counts.update({status: sum(1 for s in statuses.values() if s == status) for status in REVIEW_STATUSES})
    counts["predicted"] = counts[NEEDS_REVIEW] + counts[ACCEPTED] + counts[REJECTED]
    return counts


def _mask_key(study_uid: str, mask: Mapping[str, Any]) -> str | None:
    """Where a mask of this hash belongs (None if the hash cannot name a key)."""
    try:
        return layout.label_mask_key(study_uid, str(mask.get("sha256")))
    except ValueError:
        return None


def training_entries(
    histories: Mapping[str, Sequence[Mapping[str, Any]]],
    studies: Mapping[str, Mapping[str, Any]],
    stored_masks: set[str],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each study's latest accepted version as a training entry, and the labels that cannot be used.

    Parameters
    ----------
    histories : mapping
        Study UID -> :func:`label_versions` history.
    studies : mapping
        Study UID -> study record, for every study in the store.
    stored_masks : set of str
        Keys of the label masks in the store.

    Returns
    -------
    (list of dict, list of dict)
        :func:`imaging_lib.store.label_records.training_entry` of every usable study, and
        ``{"study_uid", "version", "reason"}`` of every accepted label left out (its study
        or its mask is missing, or the mask's key does not match its hash).
    """
    entries, skipped = [], []
    for study_uid, history in sorted(histories.items()):
        accepted = latest_accepted(history)
        if accepted is None:
            continue
        mask = accepted.get("mask") or {}
        reason = None
        if study_uid not in studies:
            reason = "its study record is missing (deleted, or the label names an unknown study)"
        elif mask and mask.get("key") != _mask_key(study_uid, mask):
            reason = "its mask key does not match the mask's hash"
        elif mask and mask["key"] not in stored_masks:
            reason = f"its mask {mask['key']} is missing from the store"
        if reason:
            skipped.append({"study_uid": study_uid, "version": accepted["version"], "reason": reason})
            continue
        latest = main_line(history)[-1]["version"]
        entries.append(label_records.training_entry(accepted, studies[study_uid], latest_version=latest))
    return entries, skipped
