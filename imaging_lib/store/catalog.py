"""The catalog: pandas DataFrames over the records in a store, and the questions asked of them.

:class:`Catalog` lists a record folder with each object's version, reads only the records
that are new or changed since its last look (all at once, concurrently on GCS), normalises
them (:func:`imaging_lib.store.records.normalise`, so older stores read) and returns one
row per record. Nested fields are kept (``series``, ``explanation``, ``parameters``...), and
the provenance fields are columns of their own (``created_at``, ``created_by``,
``library_version``, ``parameters``). A record that is not valid JSON is left out and its
key listed in :attr:`Catalog.unreadable`, so one damaged object never hides the rest.

It also answers what callers used to compute themselves: the study UIDs, a study's latest
result, which studies have a result of a model (:meth:`Catalog.studies_with_result`, the
one definition of "has a result": same model id *and* checksum), the job records and each
study's state in the latest batch. Over the label versions (:mod:`imaging_lib.store.labels`)
it gives each study's review status (a column of :meth:`Catalog.studies`, and a filter),
the landing page's counts and the training manifest (:meth:`Catalog.training_set`).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from . import label_records, layout, records, review
from .objects import Store

__all__ = [
    "JOB_COLUMNS",
    "LABEL_COLUMNS",
    "QUARANTINE_COLUMNS",
    "REPORT_COLUMNS",
    "RESULT_COLUMNS",
    "SEGMENTATION_COLUMNS",
    "STUDY_COLUMNS",
    "Catalog",
    "job_status_by_study",
    "latest_per_study",
]

_PROVENANCE_COLUMNS = ["created_at", "created_by", "library_version"]
STUDY_COLUMNS = [
    "study_uid",
    "patient_pseudonym",
    "modality",
    "study_date",
    "description",
    "series_uid",
    "shape",
    "spacing",
    "volume_key",
    "series_count",
    "review_status",
    "study_label",
    *_PROVENANCE_COLUMNS,
]
RESULT_COLUMNS = [
    "study_uid",
    "model_id",
    "model_checksum",
    "label",
    "probability",
    "most_suspicious_slice",
    "explanation_key",
    "volume_key",
    "record_key",
    *_PROVENANCE_COLUMNS,
    "parameters",
]
SEGMENTATION_COLUMNS = ["study_uid", "seg_id", "mask_key", "record_key", "seed_ijk", "method", *_PROVENANCE_COLUMNS]
REPORT_COLUMNS = ["study_uid", "template", "keys", "record_key", *_PROVENANCE_COLUMNS]
JOB_COLUMNS = [
    "job_id",
    "kind",
    "status",
    "updated_at",
    "finished_at",
    "elapsed_seconds",
    "throughput_per_minute",
    "eta_seconds",
    "error_count",
    "dashboard_link",
    *_PROVENANCE_COLUMNS,
]
LABEL_COLUMNS = [
    *("study_uid", "version", "parent", "branch", "tool", "verdict", "study_label", "slice_labels", "mask_key"),
    *("mask_reviewed", "accepted", "comment", "content_sha256", "record_key", *_PROVENANCE_COLUMNS),
]
QUARANTINE_COLUMNS = ["record_key", "error", "reason", "content_digest", "size", "created_at"]
_TIMES = ("created_at", "updated_at", "finished_at")


def _as_date(value: str | dt.date | None) -> pd.Timestamp | None:
    return None if value is None else pd.Timestamp(value)


def _row(key: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """A record as a row: its fields, its provenance lifted into columns, and its key."""
    row = {name: value for name, value in record.items() if name != "provenance"}
    row.update(record.get("provenance") or {})
    row["record_key"] = key
    return row


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    """Rows to a DataFrame with at least ``columns`` (first, in order) and parsed times."""
    frame = pd.DataFrame(rows)
    for column in columns:
        if column not in frame:
            frame[column] = None
    frame = frame[columns + [c for c in frame.columns if c not in columns]]
    for column in _TIMES:
        if column in frame:
            frame[column] = pd.to_datetime(frame[column], utc=True, errors="coerce", format="ISO8601")
    return frame.reset_index(drop=True)


def latest_per_study(results: pd.DataFrame) -> pd.DataFrame:
    """Each study's most recent row of ``results`` (any model), indexed by ``study_uid``."""
    if results.empty:
        return results.set_index("study_uid") if "study_uid" in results else results
    return results.sort_values("created_at").groupby("study_uid").tail(1).set_index("study_uid")


class Catalog:
    """DataFrames and answers over the records of a store.

    One catalog keeps what it has read: a later call re-reads only records that are new
    or changed (by the store's version tokens), so a dashboard that refreshes every few
    seconds costs one listing per record folder, not one read per record.

    Parameters
    ----------
    store : Store or str, optional
        The store, or its URL (``None``: ``$IMAGING_STORE`` or ``./data/store``).

    Attributes
    ----------
    unreadable : list of str
        Keys of records skipped because they are not JSON objects, from the last read of
        each record folder (a study listing also reads results and labels).
    """

    def __init__(self, store: Store | str | None = None) -> None:
        self.store = store if isinstance(store, Store) else Store(store)
        self._unreadable: dict[str, list[str]] = {}
        self._cache: dict[str, tuple[str, dict[str, Any] | None]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Catalog({self.store!r})"

    @property
    def unreadable(self) -> list[str]:
        return sorted({key for keys in self._unreadable.values() for key in keys})

    # ------------------------------------------------------------------ reading
    def records(self, kind: str, **fields: str) -> dict[str, dict[str, Any]]:
        """Key -> normalised record of every record of ``kind``, narrowed by leading key fields.

        Parameters
        ----------
        kind : str
            One of :data:`imaging_lib.store.layout.RECORD_KINDS`.
        **fields
            Leading fields of the key, e.g. ``study_uid="2.25.1"`` for one study's results.

        Returns
        -------
        dict
        """
        versions = {
            key: version
            for key, version in self.store.versions(layout.prefix(kind, **fields)).items()
            if (parsed := layout.parse(key)) is not None and parsed.kind == kind
        }
        with self._lock:
            stale = [key for key, version in versions.items() if self._cache.get(key, ("",))[0] != version]
            for key, data in self.store.read_many(stale, skip_missing=True).items():
                self._cache[key] = (versions[key], self._decode(kind, key, data))
            found = {key: self._cache[key][1] for key in versions if key in self._cache}
        self._unreadable[layout.prefix(kind, **fields)] = [key for key, record in found.items() if record is None]
        return {key: record for key, record in found.items() if record is not None}

    @staticmethod
    def _decode(kind: str, key: str, data: bytes) -> dict[str, Any] | None:
        try:
            record = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None
        return records.normalise(kind, record) if isinstance(record, dict) else None

    def record(self, key: str) -> dict[str, Any]:
        """The normalised record at ``key`` (read afresh).

        Raises
        ------
        imaging_lib.errors.MissingRecord
            If it does not exist.
        imaging_lib.errors.UnreadableRecord
            If it is not a JSON object.
        """
        return records.read_record(self.store, key)

    def study_uids(self) -> list[str]:
        """Every study in the store (from the listing alone), sorted."""
        keys = self.store.list(layout.STUDY_RECORDS)
        return sorted(
            parsed.study_uid for key in keys if (parsed := layout.parse(key)) and parsed.kind == "study_record"
        )

    # ------------------------------------------------------------------ studies
    def studies(
        self,
        *,
        modality: str | list[str] | None = None,
        date_from: str | dt.date | None = None,
        date_to: str | dt.date | None = None,
        prediction: str | None = None,
        model_id: str | None = None,
        review_status: str | None = None,
    ) -> pd.DataFrame:
        """One row per study, sorted by (shifted) study date then UID, with its review status.

        Parameters
        ----------
        modality : str or list of str, optional
            Keep these modalities (``"MR"``, ``["CT", "MR"]``).
        date_from, date_to : str or datetime.date, optional
            Keep studies dated within this inclusive range. Dates are the de-identified
            (shifted) dates the records hold; undated studies are dropped by a range.
        prediction : str, optional
            Keep studies with a result of this label (from ``model_id`` if given).
        model_id : str, optional
            The model whose predictions ``prediction`` looks at.
        review_status : str, optional
            Keep studies of this review status (:data:`imaging_lib.store.review.REVIEW_STATUSES`),
            e.g. ``"needs review"``.

        Returns
        -------
        pandas.DataFrame
            Columns :data:`STUDY_COLUMNS` (``study_date`` as a timestamp; ``review_status``;
            ``study_label`` of the latest label version), then the other fields of the
            records (``series`` kept as a list of dicts).
        """
        rows = []
        for key, record in self.records("study_record").items():
            row = _row(key, record)
            row.update(
                shape=tuple(record.get("shape") or ()),
                spacing=tuple(record.get("spacing") or ()),
                series_count=len(record.get("series", [])),
            )
            rows.append(row)
        frame = _frame(rows, STUDY_COLUMNS)
        frame["study_date"] = pd.to_datetime(frame["study_date"], errors="coerce")
        latest = review.latest_versions(self.label_histories())
        results = self.latest_results()
        frame["review_status"] = [review.review_status(latest.get(u), results.get(u)) for u in frame["study_uid"]]
        frame["study_label"] = frame["study_uid"].map(lambda uid: latest.get(uid, {}).get("study_label"))
        if review_status is not None:
            frame = frame[frame["review_status"] == review_status]
        if modality is not None:
            wanted = [modality] if isinstance(modality, str) else list(modality)
            frame = frame[frame["modality"].isin(wanted)]
        if date_from is not None:
            frame = frame[frame["study_date"] >= _as_date(date_from)]
        if date_to is not None:
            frame = frame[frame["study_date"] <= _as_date(date_to)]
        if prediction is not None:
            results = self.results(model_id=model_id, label=prediction)
            frame = frame[frame["study_uid"].isin(set(results["study_uid"]))]
        return frame.sort_values(["study_date", "study_uid"], na_position="last").reset_index(drop=True)

    # ------------------------------------------------------------------ results
    def results(
        self,
        *,
        model_id: str | None = None,
        label: str | None = None,
        study_uid: str | None = None,
    ) -> pd.DataFrame:
        """One row per (study, model) prediction, newest first.

        Parameters
        ----------
        model_id, label, study_uid : str, optional
            Keep only matching rows.

        Returns
        -------
        pandas.DataFrame
            Columns :data:`RESULT_COLUMNS` (``created_at`` as a UTC timestamp), then the
            other fields of the records (``slice_probabilities``, ``explanation``...).
        """
        found = self.records("result_record", **({"study_uid": study_uid} if study_uid else {}))
        frame = _frame([_row(key, record) for key, record in found.items()], RESULT_COLUMNS)
        for column, wanted in (("model_id", model_id), ("label", label), ("study_uid", study_uid)):
            if wanted is not None:
                frame = frame[frame[column] == wanted]
        return frame.sort_values(["created_at", "study_uid"], ascending=[False, True]).reset_index(drop=True)

    def latest_result(self, study_uid: str, model_id: str | None = None) -> dict[str, Any] | None:
        """The study's most recent result record (of ``model_id`` if given), or None."""
        found = review.newest(
            (key, record)
            for key, record in self.records("result_record", study_uid=study_uid).items()
            if model_id is None or record.get("model_id") == model_id
        )
        return dict(found[1]) if found else None

    def latest_results(self, study_uid: str | None = None) -> dict[str, tuple[str, dict[str, Any]]]:
        """Each study's most recent result (any model) as ``(record_key, record)``, by study UID."""
        by_study: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for key, record in self.records("result_record", **({"study_uid": study_uid} if study_uid else {})).items():
            by_study.setdefault(layout.parse_as("result_record", key).study_uid, []).append((key, record))
        return {uid: (item[0], dict(item[1])) for uid, items in by_study.items() if (item := review.newest(items))}

    def studies_with_result(
        self, model_id: str, model_checksum: str, study_uids: Iterable[str] | None = None
    ) -> set[str]:
        """The studies that have a result of this model: its id *and* its checksum.

        A result of another checksum (the same name retrained) does not count. This is
        the one definition of "has a result" the batch, the job monitor and the reports use.

        Parameters
        ----------
        model_id, model_checksum : str
            The model's identity.
        study_uids : iterable of str, optional
            Only these studies; default every study.
        """
        wanted = None if study_uids is None else set(study_uids)
        return {
            record["study_uid"]
            for record in self.records("result_record").values()
            if record.get("model_id") == model_id
            and record.get("model_checksum") == model_checksum
            and (wanted is None or record.get("study_uid") in wanted)
        }

    # ------------------------------------------------------------------ masks and reports
    def segmentations(self, *, study_uid: str | None = None) -> pd.DataFrame:
        """One row per stored mask, newest first, with its quantification flattened into columns.

        Returns
        -------
        pandas.DataFrame
            Columns :data:`SEGMENTATION_COLUMNS` and ``quantification.*``.
        """
        rows = []
        for key, record in self.records(
            "segmentation_record", **({"study_uid": study_uid} if study_uid else {})
        ).items():
            row = _row(key, record)
            row.update({f"quantification.{k}": v for k, v in (record.get("quantification") or {}).items()})
            rows.append(row)
        frame = _frame(rows, SEGMENTATION_COLUMNS)
        return frame.sort_values(["created_at"], ascending=False).reset_index(drop=True)

    def reports(self, *, study_uid: str | None = None) -> pd.DataFrame:
        """One row per report record (``keys``: format -> store key), newest first."""
        found = self.records("report_record", **({"study_uid": study_uid} if study_uid else {}))
        frame = _frame([_row(key, record) for key, record in found.items()], REPORT_COLUMNS)
        return frame.sort_values(["created_at"], ascending=False).reset_index(drop=True)

    def report_files(self, study_uid: str) -> list[str]:
        """Keys of the stored report files (ipynb, html, pdf) of a study, or of ``"cohort"``, sorted."""
        return self.store.list(layout.report_prefix(study_uid))

    # ------------------------------------------------------------------ labels and review
    def label_histories(self, study_uid: str | None = None) -> dict[str, list[dict[str, Any]]]:
        """Each study's label versions in history order (see :func:`imaging_lib.store.review.label_versions`)."""
        return review.label_versions(self.records("label_record", **({"study_uid": study_uid} if study_uid else {})))

    def labels(self, *, study_uid: str | None = None) -> pd.DataFrame:
        """One row per label version (branches included), by study and in history order.

        Returns
        -------
        pandas.DataFrame
            Columns :data:`LABEL_COLUMNS`: ``verdict`` of its decision, ``mask_key`` and
            ``mask_reviewed`` of its mask, ``accepted`` (fit for training), then the other fields.
        """
        rows = []
        for _uid, history in sorted(self.label_histories(study_uid).items()):
            for record in history:
                row = _row(record["record_key"], record)
                mask = record.get("mask") or {}
                row.update(
                    verdict=(record.get("decision") or {}).get("verdict"),
                    mask_key=mask.get("key"),
                    mask_reviewed=mask.get("reviewed") if mask else None,
                    accepted=review.is_accepted(record),
                )
                rows.append(row)
        return _frame(rows, LABEL_COLUMNS)

    def review_counts(self) -> dict[str, int]:
        """What the landing page shows: ``studies``, ``predicted`` and the studies of each review status."""
        frame = self.studies()
        return review.review_counts(dict(zip(frame["study_uid"], frame["review_status"])))

    def training_set(self) -> dict[str, Any]:
        """The manifest of reviewed labels training reads: each study's latest accepted version.

        Returns
        -------
        dict
            :func:`imaging_lib.store.label_records.training_manifest`: entries with the study
            label, slice labels, mask key and hash, content hash and patient pseudonym;
            the labels skipped and why (a missing study or mask); class counts; and
            ``manifest_sha256``.
        """
        studies = {layout.parse_as("study_record", key).study_uid: r for key, r in self.records("study_record").items()}
        stored_masks = set(self.store.list(layout.prefix("label_mask")))
        entries, skipped = review.training_entries(self.label_histories(), studies, stored_masks)
        return label_records.training_manifest(entries, skipped, store_url=self.store.url)

    # ------------------------------------------------------------------ jobs
    def job_records(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The full job records (per-item states included), oldest first.

        Parameters
        ----------
        kind : str, optional
            Only jobs of this kind (``"batch"``, ``"report"``).
        """
        found = [r for r in self.records("job_record").values() if kind is None or r.get("kind") == kind]
        return sorted(found, key=lambda r: str(r.get("provenance", {}).get("created_at", "")))

    def jobs(self) -> pd.DataFrame:
        """One row per job, newest first, with ``counts.*`` columns.

        Returns
        -------
        pandas.DataFrame
            Columns :data:`JOB_COLUMNS` and one ``counts.<state>`` column per state.
        """
        rows = []
        for key, record in self.records("job_record").items():
            row = _row(key, record)
            row.update({f"counts.{k}": v for k, v in (record.get("counts") or {}).items()})
            row["error_count"] = len(record.get("errors") or [])
            rows.append(row)
        frame = _frame(rows, JOB_COLUMNS)
        return frame.sort_values(["created_at"], ascending=False).reset_index(drop=True)

    def job_status_by_study(self) -> dict[str, str]:
        """Each study's state in the most recent batch job that holds it.

        Returns
        -------
        dict
            Study UID -> ``pending``, ``running``, ``done`` or ``failed`` (a study the job
            skipped because it already had a result counts as ``done``).
        """
        return job_status_by_study(self.job_records("batch"))

    # ------------------------------------------------------------------ quarantine
    def quarantine(self) -> pd.DataFrame:
        """One row per refused input (no file names: see :mod:`imaging_lib.ingestion`).

        Returns
        -------
        pandas.DataFrame
            Columns :data:`QUARANTINE_COLUMNS`.
        """
        rows = [_row(key, record) for key, record in self.records("quarantine_record").items()]
        frame = _frame(rows, QUARANTINE_COLUMNS)
        return frame.sort_values(["created_at"], ascending=False).reset_index(drop=True)


def job_status_by_study(job_records: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Each study's state in the most recent batch job of ``job_records`` that holds it.

    Parameters
    ----------
    job_records : iterable of mapping
        Job records in any order and of any version (they are normalised); jobs of
        other kinds than ``"batch"`` are ignored.
    """
    status: dict[str, str] = {}
    batches = (records.normalise("job_record", r) for r in job_records if r.get("kind") == "batch")
    for record in sorted(batches, key=lambda r: str(r.get("provenance", {}).get("created_at", ""))):
        for study_uid, entry in (record.get("items") or {}).items():
            state = entry.get("state", "pending")
            status[study_uid] = "done" if state == "skipped" else state
    return status
