"""Talking to a running training job: its cancellation record, and the topic its trials report on.

A dashboard, a notebook or the CLI in another process than the one that started the job
cannot reach its Dask futures, but they share the store. :func:`request_cancel` (role
``researcher``) writes ``records/cancellations/<job_id>.json``; each trial looks for it
before every epoch and every few batches (:func:`cancellation`), stops, keeps its
checkpoint and metrics, and registers nothing.
"""

from __future__ import annotations

import contextlib
from typing import Any

from ..errors import KeyExists, MissingRecord
from ..identity import Identity, require
from ..store import layout, model_records, records

__all__ = ["cancellation", "metrics_topic", "request_cancel"]


def metrics_topic(job_id: str) -> str:
    """The Dask event topic on which a training job's trials report their epochs to the job."""
    return f"imaging-training-{job_id}"


def cancellation(store: Any, job_id: str) -> dict[str, Any] | None:
    """The cancellation request of a job (who, when, why), or None."""
    try:
        return records.read_record(store, layout.cancellation_record_key(job_id))
    except MissingRecord:
        return None


def request_cancel(store: Any, job_id: str, *, identity: Identity | None = None, reason: str = "") -> dict[str, Any]:
    """Ask every trial of training job ``job_id`` to stop; return the request (the first one, if asked twice).

    Raises
    ------
    PermissionDenied
        If the user (default :func:`~imaging_lib.identity.current_identity`) may not ``train``.
    MissingRecord
        If no job of that id has a record in the store.
    """
    who = require("train", identity).name
    records.read_record(store, layout.job_record_key(job_id))  # a job that exists
    key = layout.cancellation_record_key(job_id)
    with contextlib.suppress(KeyExists):  # asked twice: the first request stands
        store.create_json(key, model_records.cancellation_record(job_id, reason=reason, created_by=who))
    return records.read_record(store, key)
