"""The archive half of ingest: WADO-RS series streamed into the batch, stored whole, recorded for resume.

For each series :func:`~imaging_lib.ingestion.archive_query.find_studies` found,
:func:`retrieve_studies`:

1. looks for its retrieval record, ``records/retrievals/<digest>.json`` where
   ``<digest>`` is the keyed hash of its original Study and Series UIDs
   (:func:`~imaging_lib.ingestion.archive_query.series_digest`): a series recorded
   there was ingested before and is skipped without a request;
2. streams it (:meth:`~imaging_lib.interop.dicomweb.DicomwebArchive.stream_series`):
   each instance, as its multipart part arrives, becomes an
   :class:`~imaging_lib.ingestion.inputs.Input` the batch de-identifies like any file
   (a bad instance is quarantined, an instance of another series is refused);
3. stores the series once its last instance is in (the batch never stores an archive
   series early), then writes its retrieval record.

A series that fails for good (a body cut short on every attempt, a refused request,
more de-identified bytes than :data:`~imaging_lib.limits.MAX_FILE_BYTES`) leaves nothing
in the store: its instances are dropped from memory and it is listed in the summary's
``failed``; the next ingest tries it again. Once the archive is unreachable or refuses
the credentials, the series left are listed as failed without asking again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ArchiveUnauthorized, ArchiveUnavailable, ImageTooLarge, ImagingError
from ..limits import MAX_FILE_BYTES
from ..store import ingest_records, layout
from .archive_query import ArchiveSeries, ArchiveStudy, series_digest
from .inputs import Input
from .progress import Progress
from .summary import ARCHIVE_SERIES

if TYPE_CHECKING:
    from ..interop.dicomweb import DicomwebArchive
    from .batch import _Batch

__all__ = ["retrieve_studies"]

_GIVE_UP = (ArchiveUnavailable, ArchiveUnauthorized)


def retrieve_studies(batch: _Batch, archive: DicomwebArchive, studies: list[ArchiveStudy], progress: Progress) -> None:
    """Retrieve and store every series of ``studies``, one at a time; record the ones that fail.

    Parameters
    ----------
    batch : _Batch
        The ingest batch (store, key, summary).
    archive : DicomwebArchive
    studies : list of ArchiveStudy
    progress : Progress
        Grows by the instances the archive counts, moves as each arrives.
    """
    batch.summary.archive = archive.url
    todo = [series for study in studies for series in study.series]
    progress.grow(sum(series.instances or 0 for series in todo))
    for index, series in enumerate(todo):
        try:
            _retrieve_series(batch, archive, series, progress)
        except _GIVE_UP as exc:
            reason = f"not tried: {type(exc).__name__} on an earlier series"
            batch.summary.failed += [
                {**_series_entry(batch, archive, rest), "error": type(exc).__name__, "reason": reason}
                for rest in todo[index + 1 :]
            ]
            return


def _series_entry(batch: _Batch, archive: DicomwebArchive, series: ArchiveSeries) -> dict[str, Any]:
    """How the summary names a series: the archive's bare URL, a short keyed reference, the de-identified UIDs."""
    digest = series_digest(batch.keys, series)
    return {
        "source": f"{archive.url} series {digest[:16]}",
        "kind": ARCHIVE_SERIES,
        "study_uid": batch.keys.uid(series.study_uid),
        "series_uid": batch.keys.uid(series.series_uid),
        "key": layout.retrieval_record_key(digest),
    }


def _retrieve_series(batch: _Batch, archive: DicomwebArchive, series: ArchiveSeries, progress: Progress) -> None:
    """Retrieve one series unless recorded as retrieved; store it whole; write its retrieval record.

    Raises
    ------
    ArchiveUnavailable, ArchiveUnauthorized
        After listing the series as failed: the series after it would fail alike.
    """
    entry = _series_entry(batch, archive, series)
    if batch.store.exists(entry["key"]):
        batch.summary.skipped.append({**entry, "reason": "already in the store"})
        progress.advance(series.instances or 0)
        return
    batch.store_waiting()  # whatever came before is complete
    summary = batch.summary
    marks = (len(summary.ingested), len(summary.skipped), len(summary.quarantined))
    received = 0

    def on_instance(data: bytes) -> None:
        nonlocal received
        received += 1
        batch.add(Input(f"{entry['source']} instance {received}", lambda: data, group=entry["source"]), None)
        progress.advance()
        if batch.pending_bytes > MAX_FILE_BYTES:
            raise ImageTooLarge(entry["source"], f"the series exceeds {MAX_FILE_BYTES} bytes de-identified")

    def on_restart() -> None:  # an attempt cut short: forget what it brought, count again from 0
        nonlocal received
        _drop_retrieval(batch, marks)
        progress.advance(-received)
        received = 0

    batch.retrieving = (entry["study_uid"], entry["series_uid"])
    try:
        archive.stream_series(series.study_uid, series.series_uid, on_instance, on_restart=on_restart)
    except ImagingError as exc:
        _drop_retrieval(batch, marks)
        summary.failed.append({**entry, "error": type(exc).__name__, "reason": exc.reason})
        if isinstance(exc, _GIVE_UP):
            raise
        return
    finally:
        batch.retrieving = None
    batch.store_waiting()
    stored = len(summary.ingested) - marks[0]
    already = any(skipped.get("reason") == "already in the store" for skipped in summary.skipped[marks[1] :])
    if stored or already:  # in the store now (or already was, instance by instance)
        record = ingest_records.retrieval_record(
            study_uid=entry["study_uid"],
            series_uid=entry["series_uid"],
            archive=archive.url,
            instances=received,
            stored=stored,
            quarantined=len(summary.quarantined) - marks[2],
        )
        batch.store.write_json(entry["key"], record)


def _drop_retrieval(batch: _Batch, marks: tuple[int, int, int]) -> None:
    """Forget the instances of the series being retrieved (none of them is in the store yet)."""
    batch.series, batch.pending_bytes = {}, 0
    ingested, skipped, quarantined = marks
    del batch.summary.ingested[ingested:], batch.summary.skipped[skipped:], batch.summary.quarantined[quarantined:]
