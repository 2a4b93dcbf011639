"""What one ingest did: files stored, skipped and quarantined, and archive series that failed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ARCHIVE_SERIES", "NOT_STORED", "IngestSummary"]

NOT_STORED = ("already in the store", "given twice in this batch")
"""Reasons of files skipped because the store has them (not left out on purpose)."""

ARCHIVE_SERIES = "dicomweb-series"
"""The ``kind`` of summary entries that stand for a whole archive series (skipped or failed)."""


@dataclass
class IngestSummary:
    """What one :func:`~imaging_lib.ingestion.batch.ingest` call did, one entry per input file.

    Attributes
    ----------
    ingested : list of dict
        Files stored: ``source``, ``kind`` (``dicom`` or ``nifti``), ``study_uid``,
        ``series_uid``, ``key``.
    skipped : list of dict
        Files already in the store (or given twice), with the same fields and ``reason``;
        archive series ingested before (``kind`` ``dicomweb-series``, ``key`` the
        retrieval record); and what was left out on purpose (hidden files, unsafe zip
        members, symbolic link loops), with ``kind``, ``study_uid``, ``series_uid`` and
        ``key`` None.
    quarantined : list of dict
        Files refused: ``source``, ``study_uid`` (None), ``error`` (the typed error's
        class name), ``reason``, ``content_digest`` and ``record_key``.
    failed : list of dict
        Archive series not stored (the archive down, a body cut short after every retry,
        an answer refused): ``source``, ``kind`` (``dicomweb-series``), the de-identified
        ``study_uid`` and ``series_uid`` they would have, ``error`` and ``reason``. Nothing
        of them is in the store; the next ingest tries them again.
    archive : str or None
        The archive's bare base URL (never with credentials), for an archive ingest.
    """

    ingested: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    archive: str | None = None

    @property
    def studies(self) -> list[str]:
        """Study UIDs that the ingested or skipped files belong to."""
        return sorted({entry["study_uid"] for entry in self.ingested + self.skipped if entry["study_uid"]})

    @property
    def ok(self) -> bool:
        """Whether nothing was quarantined and no archive series failed."""
        return not self.quarantined and not self.failed

    def __str__(self) -> str:
        series = [entry for entry in self.skipped if entry.get("kind") == ARCHIVE_SERIES]
        files = [entry for entry in self.skipped if entry.get("kind") != ARCHIVE_SERIES]
        stored = sum(1 for entry in files if entry["reason"] in NOT_STORED)
        others = len(files) - stored
        count = len(self.studies)
        lines = [
            f"ingested {len(self.ingested)} file(s), skipped {stored} already stored"
            + (f" and {others} other(s)" if others else "")
            + f", quarantined {len(self.quarantined)}; {count} stud{'y' if count == 1 else 'ies'}"
        ]
        if self.archive is not None:
            retrieved = len({entry["series_uid"] for entry in self.ingested})
            lines.append(
                f"archive {self.archive}: {retrieved} series retrieved, {len(series)} skipped (ingested before), "
                f"{len(self.failed)} failed"
            )
        lines += [f"  failed {f['source']}: {f['error']}: {f['reason']}" for f in self.failed]
        lines += [f"  quarantined {q['source']}: {q['error']}: {q['reason']}" for q in self.quarantined]
        lines += [f"  skipped {s['source']}: {s['reason']}" for s in files if s["reason"] not in NOT_STORED]
        return "\n".join(lines)
