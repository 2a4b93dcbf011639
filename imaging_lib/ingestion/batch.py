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

The de-identification key comes from :func:`imaging_lib.deid.key.load_key` (never from
the store); the store keeps only its fingerprint, and an ingest with another key is
refused before anything is written (:mod:`imaging_lib.ingestion.key_binding`).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from ..deid import Pseudonymizer
from ..deid.deidentify import deidentify
from ..deid.key import DeidKey, load_key
from ..errors import ImagingError, MissingRecord, UnexpectedFailure, UnreadableImage, UnsupportedImage
from ..io.dicom import read_dicom_bytes
from ..io.dicom_dataset import dataset_to_bytes, parse_dicom
from ..io.dicom_values import attribute, check_value_attributes, is_multivalued, text
from ..io.nifti import is_nifti_name, nifti_from_bytes
from ..limits import MAX_PENDING_BYTES
from ..progress_bar import progress_bar
from ..store import layout, records
from ..store.objects import Store
from ..volume import Volume
from .inputs import Input, Skipped, Source, expand, is_upload, open_archive
from .key_binding import bind_key_to_store, refuse_key_in_store

__all__ = ["IngestSummary", "ingest"]

ZIP_MAGIC = b"PK\x03\x04"
GZIP_MAGIC = b"\x1f\x8b"
_NOT_STORED = ("already in the store", "given twice in this batch")
_PLACING_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")


# ---------------------------------------------------------------------------- summary
@dataclass
class IngestSummary:
    """What one :func:`ingest` call did, one entry per input file.

    Attributes
    ----------
    ingested : list of dict
        Files stored: ``source``, ``kind`` (``dicom`` or ``nifti``), ``study_uid``,
        ``series_uid``, ``key``.
    skipped : list of dict
        Files already in the store (or given twice), with the same fields and ``reason``;
        and what was left out on purpose (hidden files, unsafe zip members, symbolic link
        loops), with ``kind``, ``study_uid``, ``series_uid`` and ``key`` None.
    quarantined : list of dict
        Files refused: ``source``, ``study_uid`` (None), ``error`` (the typed error's
        class name), ``reason``, ``content_digest`` and ``record_key``.
    """

    ingested: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    quarantined: list[dict[str, Any]] = field(default_factory=list)

    @property
    def studies(self) -> list[str]:
        """Study UIDs that the ingested or skipped files belong to."""
        return sorted({entry["study_uid"] for entry in self.ingested + self.skipped if entry["study_uid"]})

    def __str__(self) -> str:
        stored = sum(1 for entry in self.skipped if entry["reason"] in _NOT_STORED)
        others = len(self.skipped) - stored
        count = len(self.studies)
        lines = [
            f"ingested {len(self.ingested)} file(s), skipped {stored} already stored"
            + (f" and {others} other(s)" if others else "")
            + f", quarantined {len(self.quarantined)}; {count} stud{'y' if count == 1 else 'ies'}"
        ]
        lines += [f"  quarantined {q['source']}: {q['error']}: {q['reason']}" for q in self.quarantined]
        lines += [f"  skipped {s['source']}: {s['reason']}" for s in self.skipped if s["reason"] not in _NOT_STORED]
        return "\n".join(lines)


def _looks_like_nifti(name: str, data: bytes) -> bool:
    if is_nifti_name(name) or (data[:2] == GZIP_MAGIC and name.lower().endswith(".gz")):
        return True
    return data[344:348] == b"n+1\0" or data[4:8] == b"n+2\0"  # NIfTI-1 / NIfTI-2 magic


# ---------------------------------------------------------------------------- DICOM
@dataclass(frozen=True)
class _Deidentified:
    """A de-identified DICOM file ready to store, with what its series record needs."""

    source: str
    source_digest: str
    study_uid: str
    series_uid: str
    sop_uid: str
    data: bytes
    facts: dict[str, str]

    @property
    def key(self) -> str:
        return layout.raw_key(self.study_uid, self.series_uid, self.sop_uid)


def _deidentify_file(item: Input, data: bytes, key: DeidKey, digest: str, allow_burned_in: bool) -> _Deidentified:
    dataset = parse_dicom(data, item.name)
    if "PixelData" not in dataset or "Rows" not in dataset or "Columns" not in dataset:
        sop = dataset.get("SOPClassUID")
        kind = getattr(sop, "name", str(sop)) if sop is not None else "unknown SOP class"
        raise UnsupportedImage(item.name, f"DICOM without pixel data ({kind})")
    for keyword in _PLACING_UIDS:
        if not text(dataset, keyword, item.name):
            raise UnreadableImage(item.name, f"no {keyword}: the file cannot be placed in a study")
        if is_multivalued(attribute(dataset, keyword, item.name)):
            raise UnreadableImage(item.name, f"{keyword} must hold one UID: the file cannot be placed in a study")
    check_value_attributes(dataset, item.name)  # before de-identification can drop a value that fits no VR
    clean = deidentify(dataset, key.secret, source=item.name, allow_burned_in=allow_burned_in)
    for keyword in _PLACING_UIDS:
        if not _UID.fullmatch(text(clean, keyword, item.name)):
            raise UnreadableImage(item.name, f"{keyword} is not a valid UID after de-identification")
    dates = [text(clean, k, item.name) for k in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate")]
    facts = {
        "patient_pseudonym": text(clean, "PatientID", item.name),
        "modality": text(clean, "Modality", item.name),
        "body_part": text(clean, "BodyPartExamined", item.name),
        "study_date": next((d for d in dates if len(d) == 8), ""),
    }
    return _Deidentified(
        item.name,
        digest,
        text(clean, "StudyInstanceUID", item.name),
        text(clean, "SeriesInstanceUID", item.name),
        text(clean, "SOPInstanceUID", item.name),
        dataset_to_bytes(clean),
        facts,
    )


def _read_series(files: list[_Deidentified]) -> tuple[Volume | None, list[tuple[_Deidentified, ImagingError]]]:
    """Read a series, leaving out each file an error names; return (volume or None, refused files).

    The reader's errors name the file at fault (a truncated slice, a different pixel
    matrix or orientation): that file is refused and the rest read again. An error that
    names no single file refuses them all.
    """
    by_name = {f"{file.sop_uid}.dcm": file for file in files}
    remaining = list(files)
    refused: list[tuple[_Deidentified, ImagingError]] = []
    while remaining:
        try:
            return read_dicom_bytes([(f"{f.sop_uid}.dcm", f.data) for f in remaining]), refused
        except ImagingError as exc:
            culprit = by_name.get(Path(exc.source).name)
            if culprit is None or culprit not in remaining:
                return None, refused + [(file, exc) for file in remaining]
            remaining.remove(culprit)
            refused.append((culprit, exc))
        except Exception as exc:  # a reader bug must not stop the batch: the series is refused, named
            failure = UnexpectedFailure("<series>", f"{type(exc).__name__}: {exc}")
            return None, refused + [(file, failure) for file in remaining]
    return None, refused


# ---------------------------------------------------------------------------- records
def _iso_date(value: str) -> str | None:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else None


def _write_study_record(
    store: Store, study_uid: str, facts: dict[str, str], series: dict[str, Any], sources: Iterable[str]
) -> None:
    """Add or replace one series in a study's record (see :func:`imaging_lib.store.records.study_record`)."""
    from ..deid.deidentify import PROFILE_CODES

    key = layout.study_record_key(study_uid)
    try:
        existing: dict[str, Any] | None = records.read_record(store, key)
    except MissingRecord:
        existing = None
    earlier = (existing or {}).get("provenance", {}).get("sources", [])
    record = records.study_record(
        study_uid,
        patient_pseudonym=facts.get("patient_pseudonym", ""),
        study_date=_iso_date(facts.get("study_date", "")),
        series=records.merge_series(existing, series),
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
        self.series: dict[tuple[str, str], dict[str, _Deidentified]] = {}
        self.pending_bytes = 0

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
            record = records.quarantine_record(
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
        file = _deidentify_file(item, data, self.key, digest, self.allow_burned_in)
        group = self.series.setdefault((file.study_uid, file.series_uid), {})
        if file.sop_uid in group:
            self.summary.skipped.append(self._entry(file, "dicom", "given twice in this batch"))
            return
        group[file.sop_uid] = file
        self.pending_bytes += len(file.data)
        if self.pending_bytes > MAX_PENDING_BYTES:
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
        series = records.series_entry(
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

    def store_series(self, study_uid: str, series_uid: str, files: dict[str, _Deidentified]) -> None:
        stored = set(self.store.list(layout.raw_prefix(study_uid, series_uid)))
        new = [f for f in files.values() if f.key not in stored]
        volume_key = layout.volume_key(study_uid, series_uid)
        record_key = layout.study_record_key(study_uid)
        if not new and self.store.exists(volume_key) and self._record_has(record_key, series_uid):
            self.summary.skipped += [self._entry(f, "dicom", "already in the store") for f in files.values()]
            return
        earlier = [
            _Deidentified("<store>", "", study_uid, series_uid, layout.parse_as("raw", key).sop_uid, data, {})
            for key, data in self.store.read_many(sorted(stored - {f.key for f in new})).items()
        ]
        had_new = bool(new)
        volume, refused = _read_series(new + earlier)
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
        series = records.series_entry(
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
    def _entry(file: _Deidentified, kind: str, reason: str | None = None) -> dict[str, Any]:
        entry = {
            "source": file.source,
            "kind": kind,
            "study_uid": file.study_uid,
            "series_uid": file.series_uid,
            "key": file.key,
        }
        return entry if reason is None else {**entry, "reason": reason}

    def add(self, item: Input, queue: deque[Input | Skipped]) -> int:
        """Ingest one input (an archive queues its members next); return how many entries it queued."""
        data = None
        try:
            data = item.read()
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


def ingest(
    sources: Source | Iterable[Source],
    store: Store | str | None = None,
    *,
    secret: bytes | str | None = None,
    allow_burned_in: bool = False,
    progress: bool = True,
) -> IngestSummary:
    """De-identify and store DICOM and NIfTI files; go on past bad ones.

    Parameters
    ----------
    sources : path, URL, (name, bytes), or an iterable of them
        Local files or folders (searched recursively, hidden files skipped), zip
        archives, ``gs://`` objects or prefixes, and in-memory uploads. An iterable is
        consumed one source at a time (a generator may follow the store as it fills).
    store : Store or str, optional
        Destination; a URL or ``None`` (``$IMAGING_STORE`` or ``./data/store``) opens one.
    secret : bytes or str, optional
        De-identification key; default ``$IMAGING_DEID_SECRET``, else the user's key
        file (see :func:`imaging_lib.deid.key.load_key`).
    allow_burned_in : bool
        Accept images declaring ``BurnedInAnnotation = YES`` (refused by default).
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    IngestSummary
        Ingested, skipped and quarantined files.

    Raises
    ------
    ValueError
        If the key is shorter than 16 bytes.
    KeyFileUnsafe
        If the key file may be read by others.
    KeyMismatch
        If the store was de-identified with another key (nothing is written).
    KeyInStore
        If the store still holds ``config/deid_secret`` from an older version.
    """
    store = store if isinstance(store, Store) else Store(store)
    refuse_key_in_store(store)  # before a key file is made for a store that has its own key inside
    key = load_key(secret)
    bind_key_to_store(store, key)
    batch = _Batch(store, key, allow_burned_in)
    given = [sources] if isinstance(sources, (str, os.PathLike)) or is_upload(sources) else sources
    queue: deque[Input | Skipped] = deque()
    group = None
    with progress_bar(total=0, unit="file", desc="ingest", disable=not progress) as bar:
        for source in cast(Iterable[Source], given):  # one source at a time: a generator may follow along
            try:
                queue.extend(expand(source))
            except (ImagingError, OSError) as exc:  # a gs:// prefix that cannot be listed
                error = exc if isinstance(exc, ImagingError) else UnreadableImage(str(source), f"cannot list ({exc})")
                batch.quarantine(str(source), None, error)
            bar.total += len(queue)
            while queue:
                entry = queue.popleft()
                if isinstance(entry, Skipped):
                    batch.skip(entry)
                else:
                    if entry.group != group:
                        batch.store_waiting()  # the folder before is done: its series are complete
                        group = entry.group
                    bar.total += batch.add(entry, queue)
                bar.update(1)
        batch.store_waiting()
    return batch.summary
