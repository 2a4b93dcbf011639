"""The catalog: pandas DataFrames over the JSON records in a store.

:class:`Catalog` lists a record folder (``records/studies/``, ``records/results/``,
``records/segmentations/``, ``records/jobs/``, ``records/quarantine/``), reads every
record at once (:meth:`imaging_lib.store.Store.read_many`, concurrent on GCS) and
returns one row per record. Studies filter by modality, date range and prediction.
A record that is not valid JSON is left out and its key listed in
:attr:`Catalog.unreadable`, so one damaged object never hides the rest.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pandas as pd

from . import layout
from .objects import Store

__all__ = ["JOB_COLUMNS", "QUARANTINE_COLUMNS", "RESULT_COLUMNS", "SEGMENTATION_COLUMNS", "STUDY_COLUMNS", "Catalog"]

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
    "ingested_at",
    "library_version",
]
RESULT_COLUMNS = [
    "study_uid",
    "model_id",
    "model_sha256",
    "label",
    "probability",
    "most_suspicious_slice",
    "explanation_key",
    "created_at",
    "volume_key",
    "library_version",
    "record_key",
]
SEGMENTATION_COLUMNS = ["study_uid", "seg_id", "mask_key", "record_key", "seed_ijk", "created_at"]
JOB_COLUMNS = [
    "job_id",
    "kind",
    "status",
    "created_at",
    "updated_at",
    "finished_at",
    "elapsed_seconds",
    "throughput_per_minute",
    "eta_seconds",
    "error_count",
    "dashboard_link",
]
QUARANTINE_COLUMNS = ["record_key", "error", "reason", "content_sha256", "size", "quarantined_at"]


def _as_date(value: str | dt.date | None) -> pd.Timestamp | None:
    return None if value is None else pd.Timestamp(value)


def _frame(rows: list[dict[str, Any]], columns: list[str], times: tuple[str, ...]) -> pd.DataFrame:
    """Rows to a DataFrame with at least ``columns`` (first, in order) and parsed times."""
    frame = pd.DataFrame(rows)
    for column in columns:
        if column not in frame:
            frame[column] = None
    frame = frame[columns + [c for c in frame.columns if c not in columns]]
    for column in times:
        frame[column] = pd.to_datetime(frame[column], utc=True, errors="coerce", format="ISO8601")
    return frame.reset_index(drop=True)


class Catalog:
    """DataFrames of the studies, results, segmentations, jobs and quarantine of a store.

    Parameters
    ----------
    store : Store or str, optional
        The store, or its URL (``None``: ``$IMAGING_STORE`` or ``./data/store``).

    Attributes
    ----------
    unreadable : list of str
        Keys of records skipped by the last read because they are not valid JSON.
    """

    def __init__(self, store: Store | str | None = None) -> None:
        self.store = store if isinstance(store, Store) else Store(store)
        self.unreadable: list[str] = []

    def __repr__(self) -> str:
        return f"Catalog({self.store!r})"

    def _records(self, prefix: str) -> dict[str, dict[str, Any]]:
        keys = [key for key in self.store.list(prefix) if key.endswith(".json")]
        records: dict[str, dict[str, Any]] = {}
        self.unreadable = []
        for key, data in self.store.read_many(keys, skip_missing=True).items():
            try:
                record = json.loads(data)
            except (UnicodeDecodeError, json.JSONDecodeError):
                self.unreadable.append(key)
                continue
            if isinstance(record, dict):
                records[key] = record
            else:
                self.unreadable.append(key)
        return records

    # ------------------------------------------------------------------ studies
    def studies(
        self,
        *,
        modality: str | list[str] | None = None,
        date_from: str | dt.date | None = None,
        date_to: str | dt.date | None = None,
        prediction: str | None = None,
        model_id: str | None = None,
    ) -> pd.DataFrame:
        """One row per study, sorted by (shifted) study date then UID.

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

        Returns
        -------
        pandas.DataFrame
            Columns :data:`STUDY_COLUMNS` (``study_date`` as a timestamp), then any
            other top-level fields of the records.
        """
        rows = []
        for record in self._records(layout.STUDY_RECORDS).values():
            provenance = record.get("provenance", {})
            row = {key: value for key, value in record.items() if key not in ("series", "provenance")}
            row.update(
                shape=tuple(record.get("shape") or ()),
                spacing=tuple(record.get("spacing") or ()),
                series_count=len(record.get("series", [])),
                ingested_at=provenance.get("ingested_at"),
                library_version=provenance.get("library_version"),
            )
            rows.append(row)
        frame = _frame(rows, STUDY_COLUMNS, ("ingested_at",))
        frame["study_date"] = pd.to_datetime(frame["study_date"], errors="coerce")
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
            other scalar fields of the records.
        """
        rows = []
        for key, record in self._records(layout.RESULT_RECORDS).items():
            row = {name: value for name, value in record.items() if not isinstance(value, (list, dict))}
            parts = key.split("/")  # records/results/<study_uid>/<model_id>.json
            row.setdefault("study_uid", parts[2])
            row.setdefault("model_id", parts[3].removesuffix(".json"))
            row["record_key"] = key
            rows.append(row)
        frame = _frame(rows, RESULT_COLUMNS, ("created_at",))
        for column, wanted in (("model_id", model_id), ("label", label), ("study_uid", study_uid)):
            if wanted is not None:
                frame = frame[frame[column] == wanted]
        return frame.sort_values(["created_at", "study_uid"], ascending=[False, True]).reset_index(drop=True)

    # ------------------------------------------------------------------ others
    def segmentations(self, *, study_uid: str | None = None) -> pd.DataFrame:
        """One row per stored mask, with its quantification flattened into columns.

        Returns
        -------
        pandas.DataFrame
            Columns :data:`SEGMENTATION_COLUMNS` and ``quantification.*``.
        """
        rows = []
        for key, record in self._records(layout.SEGMENTATION_RECORDS).items():
            row = {name: value for name, value in record.items() if not isinstance(value, dict)}
            row.update({f"quantification.{k}": v for k, v in record.get("quantification", {}).items()})
            row.setdefault("record_key", key)
            row["created_at"] = record.get("created_at") or record.get("provenance", {}).get("created_at")
            rows.append(row)
        frame = _frame(rows, SEGMENTATION_COLUMNS, ("created_at",))
        if study_uid is not None:
            frame = frame[frame["study_uid"] == study_uid]
        return frame.sort_values(["created_at"], ascending=False).reset_index(drop=True)

    def jobs(self) -> pd.DataFrame:
        """One row per batch job, newest first, with ``counts.*`` columns.

        Returns
        -------
        pandas.DataFrame
            Columns :data:`JOB_COLUMNS` and one ``counts.<state>`` column per state.
        """
        rows = []
        for record in self._records(layout.JOB_RECORDS).values():
            row = {name: value for name, value in record.items() if not isinstance(value, (list, dict))}
            row.update({f"counts.{k}": v for k, v in (record.get("counts") or {}).items()})
            row["error_count"] = len(record.get("errors") or [])
            rows.append(row)
        frame = _frame(rows, JOB_COLUMNS, ("created_at", "updated_at", "finished_at"))
        return frame.sort_values(["created_at"], ascending=False).reset_index(drop=True)

    def quarantine(self) -> pd.DataFrame:
        """One row per refused input (no file names: see :mod:`imaging_lib.ingestion`).

        Returns
        -------
        pandas.DataFrame
            Columns :data:`QUARANTINE_COLUMNS`.
        """
        rows = [{**record, "record_key": key} for key, record in self._records(layout.QUARANTINE_RECORDS).items()]
        frame = _frame(rows, QUARANTINE_COLUMNS, ("quarantined_at",))
        return frame.sort_values(["quarantined_at"], ascending=False).reset_index(drop=True)
