"""Ingest: files in; de-identified DICOM, NIfTI volumes and catalog records out.

:func:`ingest` takes local files and folders, zip archives (uploads send folders as
zip), ``gs://`` objects or prefixes, and in-memory uploads (``(name, bytes)`` pairs);
:mod:`imaging_lib.ingestion.inputs` reads them with bounds. For each file it reads and
checks the bytes, de-identifies DICOM (:mod:`imaging_lib.deid`) before anything is
stored, and then writes, per series:

* ``raw/<study>/<series>/<sop>.dcm``, the de-identified DICOM files;
* ``volumes/<study>/<series>.nii.gz``, the series read back from those files with
  :func:`imaging_lib.io.dicom.read_dicom_bytes`;
* ``records/studies/<study>.json``, the catalog record (written last, so a study is
  listed only once its files and volume are in place), with provenance: library
  version, time, and a keyed hash (HMAC under the de-identification key, never a bare
  SHA-256) of every source file.

A series is stored as soon as ingest moves past the folder (or archive folder) its
files came from, or when the de-identified files waiting in memory pass
:data:`~imaging_lib.limits.MAX_PENDING_BYTES`: memory holds one folder's series, not
the batch. Files of a series that arrive later are added to it (the volume is read
again from all its stored files).

A NIfTI file becomes one volume whose study and series UIDs are keyed hashes of its
content, so ingesting it again finds it. Its header is rebuilt from voxels and affine:
free-text fields (``descrip``, ``aux_file``, extensions) do not survive.

One bad file never stops the batch: every failure of one file is a typed error
(:mod:`imaging_lib.errors`; a failure the library has no name for yet is recorded as
:class:`~imaging_lib.errors.UnexpectedFailure`), counted as quarantined, with a record
under ``records/quarantine/`` holding the error type, reason and a keyed digest of the
content. Refused bytes are never stored (they may still carry PHI), and neither are
source file names (they sometimes carry patient names); the summary returned to the
caller maps sources to outcomes, and lists what was skipped on purpose (hidden files,
unsafe zip members, symbolic link loops) with the reason. Ingesting the same files
again writes nothing: a de-identified SOP Instance UID already in the store is skipped.

An **archive** (``dicomweb+http(s)://...`` or a
:class:`~imaging_lib.interop.dicomweb.DicomwebArchive`, with a ``query``) is searched
with QIDO-RS (:mod:`imaging_lib.ingestion.archive_query`) and its series retrieved one
at a time with WADO-RS: each instance is handed to the batch as its multipart part
arrives, becomes an :class:`~imaging_lib.ingestion.inputs.Input` and is de-identified
like a file before anything is written. An archive series is stored only once its
last instance has arrived (never half: a body cut short is retried from its first
instance, and a series that fails for good leaves nothing in the store), and then
recorded under ``records/retrievals/<keyed hash of its original UIDs>.json``: a later
ingest skips it without retrieving anything. Its de-identified instances wait in
memory (at most :data:`~imaging_lib.limits.MAX_FILE_BYTES`); the multipart body never does.

The de-identification key comes from :func:`imaging_lib.deid.key.load_key` (never from
the store); the store keeps only its fingerprint, and an ingest with another key is
refused before anything is written (:mod:`imaging_lib.ingestion.key_binding`).
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

from ..deid import Pseudonymizer
from ..deid.key import DeidKey, load_key
from ..errors import ImagingError, MissingRecord, UnexpectedFailure, UnreadableImage
from ..io.nifti import is_nifti_name, nifti_from_bytes
from ..limits import MAX_PENDING_BYTES
from ..progress_bar import progress_bar
from ..store import ingest_records, layout, records
from ..store.objects import Store
from ..volume import Volume
from .archive_query import ArchiveQuery, find_studies
from .dicom_files import DeidentifiedFile, deidentify_file, read_series
from .inputs import Input, Skipped, Source, expand, is_upload, open_archive
from .key_binding import bind_key_to_store, refuse_key_in_store
from .progress import Progress, ProgressCallback
from .retrieval import retrieve_studies
from .summary import IngestSummary

if TYPE_CHECKING:
    from ..interop.dicomweb import DicomwebArchive

__all__ = ["IngestSummary", "ingest"]

ZIP_MAGIC = b"PK\x03\x04"
GZIP_MAGIC = b"\x1f\x8b"


def _looks_like_nifti(name: str, data: bytes) -> bool:
    if is_nifti_name(name) or (data[:2] == GZIP_MAGIC and name.lower().endswith(".gz")):
        return True
    return data[344:348] == b"n+1\0" or data[4:8] == b"n+2\0"  # NIfTI-1 / NIfTI-2 magic


# ---------------------------------------------------------------------------- records
def _iso_date(value: str) -> str | None:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else None


def _write_study_record(
    store: Store, study_uid: str, facts: dict[str, str], series: dict[str, Any], sources: Iterable[str]
) -> None:
    """Add or replace one series in a study's record (see :func:`imaging_lib.store.ingest_records.study_record`)."""
    from ..deid.deidentify import PROFILE_CODES

    key = layout.study_record_key(study_uid)
    try:
        existing: dict[str, Any] | None = records.read_record(store, key)
    except MissingRecord:
        existing = None
    earlier = (existing or {}).get("provenance", {}).get("sources", [])
    record = ingest_records.study_record(
        study_uid,
        patient_pseudonym=facts.get("patient_pseudonym", ""),
        study_date=_iso_date(facts.get("study_date", "")),
        series=ingest_records.merge_series(existing, series),
        sources=[*earlier, *sources],
        deidentification=[code for code, _ in PROFILE_CODES],
    )
    store.write_json(key, record)


# ---------------------------------------------------------------------------- the batch
class _Batch:
    """The state of one ingest call: store, key, summary, and series waiting to be stored."""

    def __init__(self, store: Store, key: DeidKey, allow_burned_in: bool) -> None:
        self.store = store
        self.key = key
        self.keys = Pseudonymizer(key.secret)
        self.allow_burned_in = allow_burned_in
        self.summary = IngestSummary()
        self.series: dict[tuple[str, str], dict[str, DeidentifiedFile]] = {}
        self.pending_bytes = 0
        self.retrieving: tuple[str, str] | None = None  # an archive series: stored whole, never early

    def __repr__(self) -> str:
        return f"_Batch({self.store!r}, {self.key!r}, {len(self.series)} series waiting)"

    def content_digest(self, purpose: str, data: bytes | None, fallback: str) -> str:
        """A keyed digest of a file's content (HMAC of its SHA-256): names it without letting anyone test a guess."""
        content = hashlib.sha256(data).hexdigest() if data is not None else fallback
        return self.keys.digest(purpose, content).hex()

    def quarantine(self, source: str, data: bytes | None, error: ImagingError) -> None:
        content = self.content_digest("quarantine", data, source)
        key = layout.quarantine_record_key(content)
        if not self.store.exists(key):
            record = ingest_records.quarantine_record(
                error=type(error).__name__,
                reason=error.reason,
                content_digest=content if data is not None else None,
                size=len(data) if data is not None else None,
            )
            self.store.write_json(key, record)
        self.summary.quarantined.append(
            {
                "source": source,
                "study_uid": None,
                "error": type(error).__name__,
                "reason": error.reason,
                "content_digest": content if data is not None else None,
                "record_key": key,
            }
        )

    def skip(self, skipped: Skipped) -> None:
        self.summary.skipped.append(
            {
                "source": skipped.source,
                "kind": None,
                "study_uid": None,
                "series_uid": None,
                "key": None,
                "reason": skipped.reason,
            }
        )

    def add_dicom(self, item: Input, data: bytes) -> None:
        digest = self.content_digest("source-file", data, item.name)
        file = deidentify_file(item.name, data, self.key, digest, self.allow_burned_in)
        if self.retrieving is not None and (file.study_uid, file.series_uid) != self.retrieving:
            raise UnreadableImage(item.name, "the archive sent an instance of another series than the one asked for")
        group = self.series.setdefault((file.study_uid, file.series_uid), {})
        if file.sop_uid in group:
            self.summary.skipped.append(self._entry(file, "dicom", "given twice in this batch"))
            return
        group[file.sop_uid] = file
        self.pending_bytes += len(file.data)
        if self.retrieving is None and self.pending_bytes > MAX_PENDING_BYTES:
            self.store_waiting()

    def add_nifti(self, item: Input, data: bytes) -> None:
        parsed = nifti_from_bytes(data, source=item.name)
        content = hashlib.sha256(data).hexdigest()
        study_uid = self.keys.uid(content, purpose="nifti-study")
        series_uid = self.keys.uid(content, purpose="nifti-series")
        key = layout.volume_key(study_uid, series_uid)
        entry = {"source": item.name, "kind": "nifti", "study_uid": study_uid, "series_uid": series_uid, "key": key}
        if self.store.exists(key) and self.store.exists(layout.study_record_key(study_uid)):
            self.summary.skipped.append({**entry, "reason": "already in the store"})
            return
        volume = Volume(parsed.array, parsed.affine, {"modality": "", "series_description": ""})
        self.store.write_volume(key, volume)
        series = ingest_records.series_entry(
            volume, series_uid=series_uid, volume_key=key, modality="", description="NIfTI volume", file_count=1
        )
        _write_study_record(self.store, study_uid, {}, series, [self.keys.digest("source-file", content).hex()])
        self.summary.ingested.append(entry)

    def store_waiting(self) -> None:
        """Store every series waiting in memory, largest first, and forget their files."""
        waiting = sorted(self.series.items(), key=lambda item: -sum(len(f.data) for f in item[1].values()))
        self.series, self.pending_bytes = {}, 0
        for (study_uid, series_uid), files in waiting:
            self.store_series(study_uid, series_uid, files)

    def store_series(self, study_uid: str, series_uid: str, files: dict[str, DeidentifiedFile]) -> None:
        stored = set(self.store.list(layout.raw_prefix(study_uid, series_uid)))
        new = [f for f in files.values() if f.key not in stored]
        volume_key = layout.volume_key(study_uid, series_uid)
        record_key = layout.study_record_key(study_uid)
        if not new and self.store.exists(volume_key) and self._record_has(record_key, series_uid):
            self.summary.skipped += [self._entry(f, "dicom", "already in the store") for f in files.values()]
            return
        earlier = [
            DeidentifiedFile("<store>", "", study_uid, series_uid, layout.parse_as("raw", key).sop_uid, data, {})
            for key, data in self.store.read_many(sorted(stored - {f.key for f in new})).items()
        ]
        had_new = bool(new)
        volume, refused = read_series(new + earlier)
        for file, error in refused:
            if file in new:
                new.remove(file)
                self.quarantine(file.source, file.data, error)
        if volume is None or (had_new and not new):
            return
        self.store.write_many({f.key: f.data for f in new})
        self.store.write_volume(volume_key, volume)
        facts = new[0].facts if new else next(iter(files.values())).facts
        description = " ".join(filter(None, (facts["modality"], facts["body_part"]))) or "DICOM series"
        series = ingest_records.series_entry(
            volume,
            series_uid=series_uid,
            volume_key=volume_key,
            modality=facts["modality"],
            description=description,
            file_count=len(new) + len(earlier),
        )
        _write_study_record(self.store, study_uid, facts, series, [f.source_digest for f in new])
        self.summary.ingested += [self._entry(f, "dicom") for f in new]
        self.summary.skipped += [
            self._entry(f, "dicom", "already in the store") for f in files.values() if f.key in stored
        ]

    def _record_has(self, record_key: str, series_uid: str) -> bool:
        try:
            record = self.store.read_json(record_key)
        except MissingRecord:
            return False
        return any(s.get("series_uid") == series_uid for s in record.get("series", []))

    @staticmethod
    def _entry(file: DeidentifiedFile, kind: str, reason: str | None = None) -> dict[str, Any]:
        entry = {
            "source": file.source,
            "kind": kind,
            "study_uid": file.study_uid,
            "series_uid": file.series_uid,
            "key": file.key,
        }
        return entry if reason is None else {**entry, "reason": reason}

    def add(self, item: Input, queue: deque[Input | Skipped] | None) -> int:
        """Ingest one input (an archive queues its members next); return how many entries it queued.

        ``queue`` None: the input is one DICOM instance (from an archive), never a zip or NIfTI.
        """
        data = None
        try:
            data = item.read()
            if queue is None:
                self.add_dicom(item, data)
                return 0
            if data[:4] == ZIP_MAGIC:
                members = open_archive(item, data)
                queue.extendleft(reversed(members))
                return len(members)
            if _looks_like_nifti(item.name, data):
                self.add_nifti(item, data)
            else:
                self.add_dicom(item, data)
        except ImagingError as exc:
            self.quarantine(item.name, data, exc)
        except Exception as exc:  # a failure the library has no name for must not stop the batch
            self.quarantine(item.name, data, UnexpectedFailure(item.name, f"{type(exc).__name__}: {exc}"))
        return 0


# ---------------------------------------------------------------------------- entry point
def _archive_of(sources: Any, query: Mapping[str, Any] | None, timeout: float | None) -> DicomwebArchive | None:
    """The archive ``sources`` names (a ``dicomweb+`` URL or a DicomwebArchive), or None for files."""
    from ..interop.archive_access import ARCHIVE_PREFIX
    from ..interop.dicomweb import DicomwebArchive

    if isinstance(sources, DicomwebArchive):
        archive = sources
    elif isinstance(sources, str) and sources.startswith(ARCHIVE_PREFIX):
        archive = DicomwebArchive(sources, timeout=timeout) if timeout else DicomwebArchive(sources)
    else:
        if query is not None:
            raise ValueError("query= is for an archive source (dicomweb+http(s)://...), not for files")
        return None
    if query is None:
        raise ValueError(f"{archive.url}: ingest from an archive needs query= (a patient ID or study UIDs)")
    return archive


def _ingest_sources(batch: _Batch, sources: Source | Iterable[Source], progress: Progress) -> None:
    given = [sources] if isinstance(sources, (str, os.PathLike)) or is_upload(sources) else sources
    queue: deque[Input | Skipped] = deque()
    group = None
    for source in cast(Iterable[Source], given):  # one source at a time: a generator may follow along
        try:
            queue.extend(expand(source))
        except (ImagingError, OSError) as exc:  # a gs:// prefix that cannot be listed
            error = exc if isinstance(exc, ImagingError) else UnreadableImage(str(source), f"cannot list ({exc})")
            batch.quarantine(str(source), None, error)
        progress.grow(len(queue))
        while queue:
            entry = queue.popleft()
            if isinstance(entry, Skipped):
                batch.skip(entry)
            else:
                if entry.group != group:
                    batch.store_waiting()  # the folder before is done: its series are complete
                    group = entry.group
                progress.grow(batch.add(entry, queue))
            progress.advance()


def ingest(
    sources: Source | Iterable[Source] | DicomwebArchive,
    store: Store | str | None = None,
    *,
    query: Mapping[str, Any] | None = None,
    secret: bytes | str | None = None,
    allow_burned_in: bool = False,
    progress: bool = True,
    on_progress: ProgressCallback | None = None,
    timeout: float | None = None,
) -> IngestSummary:
    """De-identify and store DICOM and NIfTI files, or a DICOMweb archive's series; go on past bad ones.

    Parameters
    ----------
    sources : path, URL, (name, bytes), an iterable of them, or an archive
        Local files or folders (searched recursively, hidden files skipped), zip
        archives, ``gs://`` objects or prefixes, and in-memory uploads. An iterable is
        consumed one source at a time (a generator may follow the store as it fills).
        Or one DICOMweb archive: ``"dicomweb+http(s)://host:port/path"`` (credentials
        from the environment or a keyring, see :mod:`imaging_lib.interop.archive_access`)
        or a :class:`~imaging_lib.interop.dicomweb.DicomwebArchive`, with ``query``.
    store : Store or str, optional
        Destination; a URL or ``None`` (``$IMAGING_STORE`` or ``./data/store``) opens one.
    query : mapping, optional
        For an archive: ``patient`` (a Patient ID) or ``study`` (UIDs), and optionally
        ``modality``, ``since`` and ``until`` (ISO dates); see
        :class:`~imaging_lib.ingestion.archive_query.ArchiveQuery`.
    secret : bytes or str, optional
        De-identification key; default ``$IMAGING_DEID_SECRET``, else the user's key
        file (see :func:`imaging_lib.deid.key.load_key`).
    allow_burned_in : bool
        Accept images declaring ``BurnedInAnnotation = YES`` (refused by default).
    progress : bool
        Show a tqdm progress bar (files, or an archive's instances).
    on_progress : callable, optional
        Called with ``(done, total)`` as the bar moves (a dashboard's live count).
    timeout : float, optional
        For an archive given by URL: seconds to wait for each answer.

    Returns
    -------
    IngestSummary
        Ingested, skipped and quarantined files; archive series that failed.

    Raises
    ------
    ValueError
        If the key is shorter than 16 bytes, or the query is missing, misplaced or invalid.
    KeyFileUnsafe
        If the key file may be read by others.
    KeyMismatch
        If the store was de-identified with another key (nothing is written).
    KeyInStore
        If the store still holds ``config/deid_secret`` from an older version.
    NothingMatched, QueryTooBroad
        If an archive query matches nothing, or too much (nothing is written).
    ArchiveError
        If the archive cannot be searched (nothing is written). Failures while
        retrieving a series are recorded in the summary's ``failed`` instead.
    """
    checked = ArchiveQuery.from_mapping(query) if query is not None else None
    store = store if isinstance(store, Store) else Store(store)
    refuse_key_in_store(store)  # before a key file is made for a store that has its own key inside
    key = load_key(secret)
    archive = _archive_of(sources, query, timeout)
    try:
        studies = find_studies(archive, cast(ArchiveQuery, checked)) if archive is not None else []
        bind_key_to_store(store, key)
        batch = _Batch(store, key, allow_burned_in)
        unit = "instance" if archive is not None else "file"
        with progress_bar(total=0, unit=unit, desc="ingest", disable=not progress) as bar:
            tracker = Progress(bar, on_progress)
            if archive is not None:
                retrieve_studies(batch, archive, studies, tracker)
            else:
                _ingest_sources(batch, cast(Source | Iterable[Source], sources), tracker)
            batch.store_waiting()
    finally:
        if archive is not None and archive is not sources:
            archive.close()
    return batch.summary
