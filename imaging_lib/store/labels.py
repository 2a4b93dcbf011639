"""Versioned labels of a study: save, list, revert; every version is a new record and none is overwritten.

A version holds a review decision on the study's prediction (accepted or rejected, with
a comment, naming the result judged), a study label (``lesion`` / ``no_lesion``), labels
of single slices and optionally a mask on the study's grid, with a "reviewed" flag. It
records who saved it and when (:func:`imaging_lib.store.records.provenance`), the parent
version it was edited from, and the tool (``"review-panel"``, ``"brush"``,
``"region-growing"``, ``"python"``...). A version is a whole snapshot: what a save does not
give is kept from its parent.

Saving is optimistic: the editor names the version it edited (``parent``). If another
version was saved meanwhile, :class:`~imaging_lib.errors.StaleLabelVersion` names the
study's latest version and the edit is kept as a branch (stored and listed, never lost),
which :func:`revert` can adopt. Of two reviewers saving at once exactly one becomes the
next version: the record is created only if its key is free (:meth:`Store.create_json`).

Masks are stored once per content under ``labels/<study>/<sha256>.nii.gz`` and written
before the record that names them. A mask of another shape or affine than the study's is
refused before anything is written. The viewer's drawing tools send voxel diffs
(:func:`imaging_lib.store.masks.apply_voxel_diff`) to a mask from :func:`editable_mask`
and save it here.

Example
-------
>>> latest = latest_label(store, uid)                                 # doctest: +SKIP
>>> save_label_version(store, uid, parent=latest and latest["version"],
...                    decision="rejected", comment="artefact", tool="review-panel")
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import InvalidLabel, KeyExists, MissingRecord, StaleLabelVersion
from ..limits import MAX_LABEL_COMMENT_CHARS, MAX_LABEL_TEXT_CHARS
from ..volume import Volume
from . import label_records, layout, records, review
from .masks import label_mask_array, mask_sha256
from .objects import Store

__all__ = [
    "SLICE_AXIS",
    "editable_mask",
    "label_history",
    "latest_label",
    "read_label_mask",
    "revert",
    "save_label_version",
]

SLICE_AXIS = 2
"""The voxel axis slice labels count along (the models' ``slice_axis``, the viewer's axial ``k``)."""


# ---------------------------------------------------------------------------- reading
def _study(store: Store, study_uid: str) -> dict[str, Any]:
    """The study's record; :class:`MissingRecord` for an unknown study."""
    _label_prefix(study_uid)
    return records.read_record(store, layout.study_record_key(study_uid))


def _label_prefix(study_uid: str) -> str:
    try:
        return layout.prefix("label_record", study_uid=study_uid)
    except (ValueError, TypeError) as exc:
        raise InvalidLabel(str(study_uid), f"not a study UID ({exc})") from None


def _listed_versions(store: Store, study_uid: str) -> dict[str, tuple[int, bool]]:
    """Version name -> (number, is branch) of every stored version of a study, from the listing alone."""
    found = {}
    for key in store.list(_label_prefix(study_uid)):
        parsed = layout.parse(key)
        number = review.parse_version(parsed.version) if parsed and parsed.kind == "label_record" else None
        if parsed is not None and number is not None:
            found[parsed.version] = number
    return found


def _latest_name(versions: Mapping[str, tuple[int, bool]]) -> str | None:
    main = [(number, name) for name, (number, branch) in versions.items() if not branch]
    return max(main)[1] if main else None


def label_history(store: Store, study_uid: str) -> list[dict[str, Any]]:
    """Every version of a study's labels, branches included, in history order.

    Parameters
    ----------
    store : Store
    study_uid : str

    Returns
    -------
    list of dict
        Normalised label records with ``record_key``; ``branch`` tells the branches.
        Empty if the study has no labels.
    """
    from .catalog import Catalog

    _label_prefix(study_uid)
    found = Catalog(store).records("label_record", study_uid=study_uid)
    return review.label_versions(found).get(study_uid, [])


def latest_label(store: Store, study_uid: str) -> dict[str, Any] | None:
    """The study's latest version (the newest on the main line), or None."""
    main = review.main_line(label_history(store, study_uid))
    return dict(main[-1]) if main else None


def read_label_mask(store: Store, label: Mapping[str, Any]) -> Volume:
    """The mask of a label version, checked against the SHA-256 its record holds.

    Raises
    ------
    InvalidLabel
        If the version has no mask, or the stored voxels do not match their hash.
    MissingRecord
        If the mask object is missing.
    """
    mask = label.get("mask")
    source = f"{label.get('study_uid')} {label.get('version')}"
    if not mask:
        raise InvalidLabel(source, "this label version has no mask")
    try:
        key = layout.label_mask_key(str(label["study_uid"]), str(mask.get("sha256")))
    except ValueError:
        raise InvalidLabel(source, "its mask hash cannot name a key") from None
    volume = store.read_volume(key)
    if volume.array.dtype != np.uint8 or mask_sha256(volume.array) != mask.get("sha256"):
        raise InvalidLabel(key, "the stored mask does not match its SHA-256: the object was changed")
    return volume


def editable_mask(store: Store, study_uid: str, label: Mapping[str, Any] | None = None) -> np.ndarray:
    """A writable ``uint8`` copy of a version's mask (default the latest), or zeros on the study's grid.

    Raises
    ------
    MissingRecord
        If the study is unknown.
    """
    label = label if label is not None else latest_label(store, study_uid)
    if label and label.get("mask"):
        return np.array(read_label_mask(store, label).array, dtype=np.uint8, order="C")
    shape = [int(n) for n in _study(store, study_uid)["shape"]][:3]
    return np.zeros(shape, dtype=np.uint8)


# ---------------------------------------------------------------------------- content
def _check_text(value: str, name: str, limit: int, source: str) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidLabel(source, f"{name} must be text of at most {limit} characters")
    return value


def _check_label(value: Any, what: str, source: str) -> str:
    if value not in review.LABELS:
        raise InvalidLabel(source, f"{what} must be one of {', '.join(review.LABELS)}, not {value!r}")
    return str(value)


def _merged_slice_labels(
    current: Mapping[str, str], changes: Mapping[int, str | None], slices: int, source: str
) -> dict[str, str]:
    """``current`` with ``changes`` applied (None removes a slice's label), every slice checked."""
    merged = dict(current)
    for index, value in changes.items():
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= int(index) < slices:
            raise InvalidLabel(source, f"slice {index!r} is not one of the study's {slices} slices (0-{slices - 1})")
        if value is None:
            merged.pop(str(int(index)), None)
        else:
            merged[str(int(index))] = _check_label(value, f"the label of slice {index}", source)
    return dict(sorted(merged.items(), key=lambda item: int(item[0])))


def _check_consistent(content: Mapping[str, Any], source: str) -> None:
    """Refuse a study labelled ``no_lesion`` with a slice labelled ``lesion``."""
    lesion_slices = [index for index, value in content["slice_labels"].items() if value == review.LABELS[1]]
    if content.get("study_label") == review.LABELS[0] and lesion_slices:
        raise InvalidLabel(
            source,
            f"slice {lesion_slices[0]} is labelled {review.LABELS[1]} but the study {review.LABELS[0]}: "
            f"label the study {review.LABELS[1]} too, or change the slice",
        )


def _judged_result(store: Store, study_uid: str, result_key: str | None) -> tuple[str, dict[str, Any]]:
    """The result a decision judges: ``result_key`` (checked to be this study's), else the latest."""
    from .catalog import Catalog

    if result_key is None:
        latest = Catalog(store).latest_results(study_uid).get(study_uid)
        if latest is None:
            raise InvalidLabel(study_uid, "the study has no prediction to accept or reject")
        return latest
    parsed = layout.parse(result_key)
    if parsed is None or parsed.kind != "result_record" or parsed.study_uid != study_uid:
        raise InvalidLabel(study_uid, f"{result_key!r} is not a result record of this study")
    return result_key, records.read_record(store, result_key)


def _implied_label(decision: Mapping[str, Any]) -> str | None:
    """The study label a decision implies: the predicted label if accepted, the other one if rejected."""
    predicted = decision.get("predicted_label")
    if predicted not in review.LABELS:
        return None
    if decision.get("verdict") == review.ACCEPTED:
        return str(predicted)
    return review.LABELS[1 - review.LABELS.index(predicted)]


def _store_mask(store: Store, study_uid: str, array: np.ndarray, affine: np.ndarray) -> tuple[str, str]:
    """Write a mask once under its hash (never over another object); return its key and hash."""
    from ..io.nifti import nifti_to_bytes

    sha = mask_sha256(array)
    key = layout.label_mask_key(study_uid, sha)
    if not store.exists(key):
        volume = Volume(array, affine, {"series_description": "label mask"})
        with contextlib.suppress(KeyExists):  # another save wrote the same voxels first
            store.create_bytes(key, nifti_to_bytes(volume, compress=True))
    return key, sha


# ---------------------------------------------------------------------------- saving
def _commit(
    store: Store,
    study_uid: str,
    parent: str | None,
    content: Mapping[str, Any],
    *,
    tool: str,
    comment: str,
    reverted_from: str | None,
    created_by: str | None,
    versions: Mapping[str, tuple[int, bool]],
) -> dict[str, Any]:
    """Create the next main-line version if ``parent`` is the latest, else keep the edit as a branch."""
    latest = _latest_name(versions)

    def build(version: str, branch: bool) -> dict[str, Any]:
        return label_records.label_record(
            study_uid=study_uid, version=version, parent=parent, branch=branch, tool=tool, content=content,
            comment=comment, reverted_from=reverted_from, created_by=created_by,
        )  # fmt: skip

    if parent == latest:
        version = review.version_name((versions[latest][0] if latest else 0) + 1)
        record = build(version, False)
        try:
            store.create_json(layout.label_record_key(study_uid, version), record)
            return {**record, "record_key": layout.label_record_key(study_uid, version)}
        except KeyExists:
            pass  # another reviewer saved this version first
    branch = review.branch_name((versions[parent][0] if parent else 0) + 1)
    store.create_json(layout.label_record_key(study_uid, branch), build(branch, True))
    raise StaleLabelVersion(study_uid, parent, _latest_name(_listed_versions(store, study_uid)), branch)


def save_label_version(
    store: Store,
    study_uid: str,
    *,
    parent: str | None,
    mask: Volume | np.ndarray | None = None,
    mask_reviewed: bool | None = None,
    mask_source: str | None = None,
    study_label: str | None = None,
    slice_labels: Mapping[int, str | None] | None = None,
    decision: str | None = None,
    result_key: str | None = None,
    comment: str = "",
    tool: str = "python",
    created_by: str | None = None,
) -> dict[str, Any]:
    """Save a new version of a study's labels: its parent's content with the given changes.

    Parameters
    ----------
    store : Store
    study_uid : str
    parent : str or None
        The version the edit was made on: the study's latest as the editor saw it (None
        for a study without labels).
    mask : Volume or numpy.ndarray, optional
        A new mask on the study's grid (values 0-255); default the parent's.
    mask_reviewed : bool, optional
        Mark the mask (the new one, else the parent's) as reviewed or not; a new mask is
        not reviewed unless this says so.
    mask_source : str, optional
        The store key the mask was taken from (a saved segmentation).
    study_label : {"lesion", "no_lesion"}, optional
        Default the parent's, or what ``decision`` implies.
    slice_labels : mapping of int to str or None, optional
        Labels of slices (index along :data:`SLICE_AXIS`) to set; None removes one.
    decision : {"accepted", "rejected"}, optional
        A verdict on the prediction. Accepting sets the study label to the predicted one,
        rejecting to the other one (a contradicting ``study_label`` is refused).
    result_key : str, optional
        The result record judged; default the study's latest result.
    comment : str
        Why (kept with the version, and with the decision).
    tool : str
        What made the edit (``"review-panel"``, ``"brush"``, ``"python"``...).
    created_by : str, optional
        Who; default :func:`imaging_lib.store.records.current_user`.

    Returns
    -------
    dict
        The record written, with ``record_key``.

    Raises
    ------
    StaleLabelVersion
        If ``parent`` is no longer the latest version; the edit is stored as a branch.
    MaskGeometryMismatch
        If the mask's shape or affine differs from the study's, or its values are not
        0-255 integers. Nothing is written.
    InvalidLabel
        An unknown label, parent, slice or result, a decision without a prediction, a
        text too long. Nothing is written.
    MissingRecord
        If the study (or the named result) does not exist.
    """
    study = _study(store, study_uid)
    _check_text(tool, "the tool", MAX_LABEL_TEXT_CHARS, study_uid)
    _check_text(comment, "a comment", MAX_LABEL_COMMENT_CHARS, study_uid)
    versions = _listed_versions(store, study_uid)
    if parent is not None and parent not in versions:
        raise InvalidLabel(study_uid, f"parent version {parent!r} does not exist")
    base = records.read_record(store, layout.label_record_key(study_uid, parent)) if parent else {}
    content: dict[str, Any] = {name: base.get(name) for name in label_records.LABEL_CONTENT_FIELDS}
    content["slice_axis"] = SLICE_AXIS
    slices = int(list(study.get("shape") or [1, 1, 1])[SLICE_AXIS])
    content["slice_labels"] = _merged_slice_labels(
        content.get("slice_labels") or {}, dict(slice_labels or {}), slices, study_uid
    )
    if study_label is not None:
        _check_label(study_label, "the study label", study_uid)
    if decision is not None:
        if decision not in review.VERDICTS:
            raise InvalidLabel(study_uid, f"a decision is one of {', '.join(review.VERDICTS)}, not {decision!r}")
        judged_key, result = _judged_result(store, study_uid, result_key)
        content["decision"] = label_records.review_decision(
            decision, result_key=judged_key, result=result, comment=comment
        )
        implied = _implied_label(content["decision"])
        if study_label is not None and implied is not None and study_label != implied:
            predicted = result.get("label")
            raise InvalidLabel(study_uid, f"{decision} a prediction of {predicted!r} contradicts {study_label!r}")
        study_label = study_label or implied
    elif study_label is not None and content.get("decision"):
        implied = _implied_label(content["decision"])
        if implied is not None and implied != study_label:
            content["decision"] = None  # the label now contradicts the inherited verdict: review the prediction again
    if study_label is not None:
        content["study_label"] = study_label
    _check_consistent(content, study_uid)
    if mask_source is not None and (not isinstance(mask_source, str) or layout.parse(mask_source) is None):
        raise InvalidLabel(study_uid, f"mask source {mask_source!r} is not a store key")
    if mask is not None:
        study_volume = store.read_volume(study["volume_key"])
        array = label_mask_array(mask, study_volume, source=study_uid)
        key, sha = _store_mask(store, study_uid, array, study_volume.affine)
        content["mask"] = label_records.label_mask_entry(
            key=key, sha256=sha, shape=array.shape, voxel_count=int(np.count_nonzero(array)),
            reviewed=bool(mask_reviewed), source=mask_source,
        )  # fmt: skip
    elif mask_reviewed is not None:
        if not content.get("mask"):
            raise InvalidLabel(study_uid, "there is no mask to mark as reviewed")
        content["mask"] = {**content["mask"], "reviewed": bool(mask_reviewed)}
    return _commit(
        store, study_uid, parent, content, tool=tool, comment=comment, reverted_from=None,
        created_by=created_by, versions=versions,
    )  # fmt: skip


def revert(
    store: Store,
    study_uid: str,
    version: str,
    *,
    parent: str | None,
    comment: str = "",
    tool: str = "python",
    created_by: str | None = None,
) -> dict[str, Any]:
    """Save a new version whose content equals ``version``'s (a main-line version or a branch).

    Adopting a branch after a :class:`~imaging_lib.errors.StaleLabelVersion` is a revert to
    it on the latest version.

    Parameters
    ----------
    store : Store
    study_uid : str
    version : str
        The version whose content to restore.
    parent : str or None
        The latest version as the editor saw it (see :func:`save_label_version`).
    comment, tool, created_by
        As for :func:`save_label_version`.

    Returns
    -------
    dict
        The record written (``reverted_from`` names ``version``; ``content_sha256`` equals its).

    Raises
    ------
    StaleLabelVersion
        If ``parent`` is no longer the latest version (the revert is kept as a branch).
    InvalidLabel
        If ``version`` or ``parent`` does not exist, or the version's mask is gone.
    MissingRecord
        If the study does not exist.
    """
    _study(store, study_uid)
    _check_text(tool, "the tool", MAX_LABEL_TEXT_CHARS, study_uid)
    _check_text(comment, "a comment", MAX_LABEL_COMMENT_CHARS, study_uid)
    versions = _listed_versions(store, study_uid)
    for name in (version, parent):
        if name is not None and name not in versions:
            raise InvalidLabel(study_uid, f"version {name!r} does not exist")
    try:
        source = records.read_record(store, layout.label_record_key(study_uid, version))
    except MissingRecord:
        raise InvalidLabel(study_uid, f"version {version!r} was removed while reverting") from None
    content = {name: source.get(name) for name in label_records.LABEL_CONTENT_FIELDS}
    if content.get("mask"):
        read_label_mask(store, {**source, "study_uid": study_uid})  # still there and unchanged
    return _commit(
        store, study_uid, parent, content, tool=tool, comment=comment, reverted_from=version,
        created_by=created_by, versions=versions,
    )  # fmt: skip
