"""Ingest: files in; de-identified DICOM, NIfTI volumes and catalog records out.

:func:`ingest` takes local files and folders, zip archives (uploads send folders as
zip), ``gs://`` objects or prefixes, and in-memory uploads (``(name, bytes)`` pairs). For
each file it reads and checks the bytes, de-identifies DICOM (:mod:`imaging_lib.deid`)
before anything is stored, and then writes, per series:

* ``raw/<study>/<series>/<sop>.dcm``, the de-identified DICOM files;
* ``volumes/<study>/<series>.nii.gz``, the series read back from those files with
  :func:`imaging_lib.io.dicom.read_dicom_bytes`;
* ``records/studies/<study>.json``, the catalog record (written last, so a study is
  listed only once its files and volume are in place), with provenance: library
  version, time, and the SHA-256 of every source file.

A NIfTI file becomes one volume whose study and series UIDs are keyed hashes of its
content, so ingesting it again finds it. Its header is rebuilt from voxels and affine:
free-text fields (``descrip``, ``aux_file``, extensions) do not survive.

One bad file never stops the batch: it is counted as quarantined, with a record under
``records/quarantine/`` holding the error type, reason and content hash. Refused bytes
are never stored (they may still carry PHI), and neither are source file names (they
sometimes carry patient names); the summary returned to the caller maps sources to
outcomes. Ingesting the same files again writes nothing: a de-identified SOP Instance
UID already in the store is skipped.

The project secret that keys the de-identification is ``secret=``, else
``$IMAGING_DEID_SECRET``, else the store's private key ``config/deid_secret`` (generated
on first use). Keep ``config/`` readable only by the project: whoever holds the secret
can test guesses of patient IDs against the pseudonyms.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets as secrets_module
import zipfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import settings
from ..deid.deidentify import Pseudonymizer, check_secret, deidentify
from ..errors import ImageTooLarge, ImagingError, MissingRecord, UnreadableImage, UnsupportedImage
from ..io.dicom import read_dicom_bytes
from ..io.dicom_dataset import dataset_to_bytes, parse_dicom
from ..io.nifti import is_nifti_name, nifti_from_bytes
from ..limits import MAX_IMAGE_BYTES
from ..store import layout, records
from ..store.objects import Store, open_filesystem
from ..volume import Volume

__all__ = ["SECRET_ENV", "SECRET_KEY", "IngestSummary", "ingest", "project_secret"]

SECRET_ENV = settings.DEID_SECRET.name
SECRET_KEY = "config/deid_secret"
ZIP_MAGIC = b"PK\x03\x04"
GZIP_MAGIC = b"\x1f\x8b"

Source = str | os.PathLike[str] | tuple[str, bytes]


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
        Files already in the store (or given twice): the same fields and ``reason``.
    quarantined : list of dict
        Files refused: ``source``, ``study_uid`` (None), ``error`` (the typed error's
        class name), ``reason``, ``content_sha256`` and ``record_key``.
    """

    ingested: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    quarantined: list[dict[str, Any]] = field(default_factory=list)

    @property
    def studies(self) -> list[str]:
        """Study UIDs that the ingested or skipped files belong to."""
        return sorted({entry["study_uid"] for entry in self.ingested + self.skipped})

    def __str__(self) -> str:
        lines = [
            f"ingested {len(self.ingested)} file(s), skipped {len(self.skipped)} already stored, "
            f"quarantined {len(self.quarantined)}; {len(self.studies)} stud{'y' if len(self.studies) == 1 else 'ies'}"
        ]
        lines += [f"  quarantined {q['source']}: {q['error']}: {q['reason']}" for q in self.quarantined]
        return "\n".join(lines)


# ---------------------------------------------------------------------------- secret
def project_secret(store: Store, secret: bytes | str | None = None) -> bytes:
    """Return the de-identification secret: argument, environment, or the store's key file.

    Parameters
    ----------
    store : Store
        Where ``config/deid_secret`` lives (created with 32 random bytes if absent).
    secret : bytes or str, optional
        An explicit secret, which wins.

    Returns
    -------
    bytes

    Raises
    ------
    ValueError
        If the secret found is shorter than 16 bytes.
    """
    if secret is not None:
        return check_secret(secret)
    environment_secret = settings.read(settings.DEID_SECRET)
    if environment_secret:
        return check_secret(environment_secret)
    try:
        return check_secret(store.read_bytes(SECRET_KEY))
    except MissingRecord:
        store.write_bytes(SECRET_KEY, secrets_module.token_hex(32).encode("ascii"))
        return check_secret(store.read_bytes(SECRET_KEY))  # another writer may have won the race


# ---------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class _Input:
    """One file to ingest: where it came from and how to get its bytes."""

    name: str
    read: Callable[[], bytes]


def _local_reader(path: Path) -> Callable[[], bytes]:
    def read() -> bytes:
        try:
            return path.read_bytes()
        except OSError as exc:
            raise UnreadableImage(path, f"cannot open: {exc.strerror or exc}") from None

    return read


def _remote_inputs(url: str) -> Iterator[_Input]:
    filesystem, path = open_filesystem(url)
    protocol = url.partition("://")[0]
    filesystem.invalidate_cache(path)
    paths = sorted(filesystem.find(path)) if filesystem.isdir(path) else [path]
    for found in paths:
        name = f"{protocol}://{found.lstrip('/')}"

        def read(found: str = found, name: str = name) -> bytes:
            try:
                return filesystem.cat_file(found)
            except FileNotFoundError:
                raise UnreadableImage(name, "no such object") from None

        yield _Input(name, read)


def _inputs(source: Source) -> Iterator[_Input]:
    if _is_upload(source):
        name, data = source
        yield _Input(str(name), lambda: bytes(data))
    elif "://" in os.fspath(source) and not os.fspath(source).startswith("file://"):
        yield from _remote_inputs(os.fspath(source))
    else:
        path = Path(os.fspath(source).removeprefix("file://"))
        if path.is_dir():
            for found in sorted(p for p in path.rglob("*") if p.is_file()):
                if not any(part.startswith(".") for part in found.relative_to(path).parts):
                    yield _Input(str(found), _local_reader(found))
        else:
            yield _Input(str(path), _local_reader(path))


def _is_upload(source: Any) -> bool:
    return isinstance(source, tuple) and len(source) == 2 and isinstance(source[1], (bytes, bytearray, memoryview))


def _zip_members(archive: _Input, data: bytes) -> list[_Input]:
    try:
        bundle = zipfile.ZipFile(io.BytesIO(data))
        members = [
            info
            for info in bundle.infolist()
            if not info.is_dir() and not any(part.startswith((".", "__MACOSX")) for part in info.filename.split("/"))
        ]
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UnreadableImage(archive.name, f"corrupt zip archive ({exc})") from None

    def reader(info: zipfile.ZipInfo, name: str) -> Callable[[], bytes]:
        def read() -> bytes:
            if info.file_size > MAX_IMAGE_BYTES:
                raise ImageTooLarge(name, f"zip member of {info.file_size} bytes, over the limit of {MAX_IMAGE_BYTES}")
            try:
                return bundle.read(info)
            except (zipfile.BadZipFile, RuntimeError, OSError, ValueError) as exc:  # CRC errors, encryption
                raise UnreadableImage(name, f"cannot extract from zip ({exc})") from None

        return read

    return [
        _Input(f"{archive.name}::{info.filename}", reader(info, f"{archive.name}::{info.filename}")) for info in members
    ]


def _looks_like_nifti(name: str, data: bytes) -> bool:
    if is_nifti_name(name) or (data[:2] == GZIP_MAGIC and name.lower().endswith(".gz")):
        return True
    return data[344:348] == b"n+1\0" or data[4:8] == b"n+2\0"  # NIfTI-1 / NIfTI-2 magic


# ---------------------------------------------------------------------------- DICOM
@dataclass(frozen=True)
class _Deidentified:
    """A de-identified DICOM file ready to store, with what its series record needs."""

    source: str
    source_sha256: str
    study_uid: str
    series_uid: str
    sop_uid: str
    data: bytes
    facts: dict[str, str]

    @property
    def key(self) -> str:
        return layout.raw_key(self.study_uid, self.series_uid, self.sop_uid)


def _text(dataset: Any, keyword: str) -> str:
    return str(dataset.get(keyword, "") or "").strip()


def _deidentify_file(item: _Input, data: bytes, secret: bytes, allow_burned_in: bool) -> _Deidentified:
    dataset = parse_dicom(data, item.name)
    if "PixelData" not in dataset or "Rows" not in dataset or "Columns" not in dataset:
        sop = dataset.get("SOPClassUID")
        kind = getattr(sop, "name", str(sop)) if sop is not None else "unknown SOP class"
        raise UnsupportedImage(item.name, f"DICOM without pixel data ({kind})")
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        if not _text(dataset, keyword):
            raise UnreadableImage(item.name, f"no {keyword}: the file cannot be placed in a study")
    clean = deidentify(dataset, secret, source=item.name, allow_burned_in=allow_burned_in)
    dates = [_text(clean, k) for k in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate")]
    facts = {
        "patient_pseudonym": _text(clean, "PatientID"),
        "modality": _text(clean, "Modality"),
        "body_part": _text(clean, "BodyPartExamined"),
        "study_date": next((d for d in dates if len(d) == 8), ""),
    }
    return _Deidentified(
        item.name,
        hashlib.sha256(data).hexdigest(),
        str(clean.StudyInstanceUID),
        str(clean.SeriesInstanceUID),
        str(clean.SOPInstanceUID),
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
    """The state of one ingest call: store, keys, summary, and series awaiting storage."""

    def __init__(self, store: Store, secret: bytes, allow_burned_in: bool) -> None:
        self.store = store
        self.secret = secret
        self.keys = Pseudonymizer(secret)
        self.allow_burned_in = allow_burned_in
        self.summary = IngestSummary()
        self.series: dict[tuple[str, str], dict[str, _Deidentified]] = {}

    def quarantine(self, source: str, data: bytes | None, error: ImagingError) -> None:
        content = self.keys.digest("quarantine", data.hex() if data is not None else source).hex()
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

    def add_dicom(self, item: _Input, data: bytes) -> None:
        file = _deidentify_file(item, data, self.secret, self.allow_burned_in)
        group = self.series.setdefault((file.study_uid, file.series_uid), {})
        if file.sop_uid in group:
            self.summary.skipped.append(self._entry(file, "dicom", "given twice in this batch"))
        else:
            group[file.sop_uid] = file

    def add_nifti(self, item: _Input, data: bytes) -> None:
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
        _write_study_record(self.store, study_uid, {}, series, [content])
        self.summary.ingested.append(entry)

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
        _write_study_record(self.store, study_uid, facts, series, [f.source_sha256 for f in new])
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
        archives, ``gs://`` objects or prefixes, and in-memory uploads.
    store : Store or str, optional
        Destination; a URL or ``None`` (``$IMAGING_STORE`` or ``./data/store``) opens one.
    secret : bytes or str, optional
        De-identification secret; see :func:`project_secret`.
    allow_burned_in : bool
        Accept images declaring ``BurnedInAnnotation = YES`` (refused by default).
    progress : bool
        Show tqdm progress bars (files read, then series stored).

    Returns
    -------
    IngestSummary
        Ingested, skipped (already stored) and quarantined files.

    Raises
    ------
    ValueError
        If the secret is shorter than 16 bytes.
    """
    from tqdm.auto import tqdm

    store = store if isinstance(store, Store) else Store(store)
    batch = _Batch(store, project_secret(store, secret), allow_burned_in)
    if isinstance(sources, (str, os.PathLike)) or _is_upload(sources):
        sources = [sources]
    queue: deque[_Input] = deque()
    for source in sources:
        try:
            queue.extend(_inputs(source))
        except (ImagingError, OSError) as exc:  # a gs:// prefix that cannot be listed
            error = exc if isinstance(exc, ImagingError) else UnreadableImage(str(source), f"cannot list ({exc})")
            batch.quarantine(str(source), None, error)
    with tqdm(total=len(queue), unit="file", desc="de-identify", disable=not progress) as bar:
        while queue:
            item = queue.popleft()
            data = None
            try:
                data = item.read()
                if data[:4] == ZIP_MAGIC:
                    members = _zip_members(item, data)
                    queue.extend(members)
                    bar.total += len(members)
                elif _looks_like_nifti(item.name, data):
                    batch.add_nifti(item, data)
                else:
                    batch.add_dicom(item, data)
            except ImagingError as exc:
                batch.quarantine(item.name, data, exc)
            bar.update(1)
    for (study_uid, series_uid), files in tqdm(batch.series.items(), unit="series", desc="store", disable=not progress):
        batch.store_series(study_uid, series_uid, files)
    return batch.summary
