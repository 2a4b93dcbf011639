"""The project store: keys to bytes on a local folder, Google Cloud Storage or memory.

One class, :class:`Store`, over fsspec (:mod:`~imaging_lib.store.filesystems` opens the
filesystem of its URL). Every object the platform keeps (de-identified
DICOM, NIfTI volumes, JSON records, reports) goes through it, under the layout of
:mod:`imaging_lib.store.layout`.

* ``Store()`` is a local folder: ``$IMAGING_STORE`` or ``./data/store``.
* ``Store("gs://bucket/prefix")`` goes through gcsfs with the standard Google
  credentials (application default credentials, ``GOOGLE_APPLICATION_CREDENTIALS``,
  or ``token=`` in the storage options). When ``STORAGE_EMULATOR_HOST`` is set (tests
  against ``gcp-storage-emulator``) and no token is given, requests are anonymous.
* ``Store("memory://name")`` is fsspec's in-process memory filesystem, for tests of
  pure logic.

Guarantees:

* Writes are atomic. A local write goes to a hidden temporary file in the same folder
  and is moved over the key with :func:`os.replace`; an object-store write is one
  upload of the whole object (GCS makes an object visible only once its upload
  completes). A reader never sees half an object and a failed write leaves the
  previous version in place.
* Keys are validated: relative, ``/``-separated segments of ``[A-Za-z0-9._-]`` that do
  not start with a dot, so no ``..``, no absolute path, no empty segment, and no key
  can name a temporary file or leave the root.
* Listings are fresh: gcsfs's listing cache is invalidated before every listing and
  existence check, so an object written by another process is seen.
* The store pickles as its URL and options and rebuilds its filesystem lazily, so it
  can be shipped to Dask workers. Its ``repr`` and ``url`` never show credentials.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, BinaryIO

from .. import settings
from ..errors import KeyExists, MissingRecord, UnreadableRecord
from ..limits import MAX_KEY_LENGTH
from ..volume import Volume
from .filesystems import canonical_url, open_filesystem, reject_credentials_in_url

__all__ = [
    "DEFAULT_STORE",
    "EMULATOR_ENV",
    "STORE_ENV",
    "Store",
    "open_filesystem",
    "validate_key",
]

DEFAULT_STORE = "./data/store"
STORE_ENV = settings.STORE.name
EMULATOR_ENV = settings.STORAGE_EMULATOR_HOST.name

_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_TEMP_PREFIX = ".tmp-"
_CREATE_LOCK = threading.Lock()  # makes memory://'s check-then-write atomic within a process


def validate_key(key: str, *, allow_empty: bool = False) -> str:
    """Return ``key`` if it is a safe store key, else raise ``ValueError`` naming it.

    Parameters
    ----------
    key : str
        A relative key such as ``records/studies/2.25.1.json``. A trailing ``/`` is
        accepted (prefixes of listings).
    allow_empty : bool
        Accept ``""`` (the whole store, for listings).

    Returns
    -------
    str
        The key, unchanged.

    Raises
    ------
    ValueError
        If the key is not a string, is too long, absolute, has an empty, ``.`` or
        ``..`` segment, a segment starting with a dot, or a character outside
        ``[A-Za-z0-9._-]``.
    """
    if not isinstance(key, str):
        raise ValueError(f"{key!r}: a store key must be a string")
    if key == "" and allow_empty:
        return key
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"{key[:60]!r}...: a store key is at most {MAX_KEY_LENGTH} characters")
    body = key[:-1] if key.endswith("/") and len(key) > 1 else key
    for segment in body.split("/"):
        if not _SEGMENT.fullmatch(segment):
            raise ValueError(
                f"{key!r}: invalid store key (segment {segment!r}); keys are relative, '/'-separated "
                "segments of letters, digits, '.', '_' and '-' that do not start with '.'"
            )
    return key


class Store:
    """Keys to bytes on a local folder, ``gs://`` or ``memory://``, with atomic writes.

    Parameters
    ----------
    url : str, optional
        Where the store lives. ``None`` means ``$IMAGING_STORE``, else ``./data/store``.
    **storage_options
        Passed to the fsspec filesystem (for ``gs://``: ``token`` as a path to a
        service-account JSON, a dict, ``"google_default"``, ...). Never shown in
        ``repr`` or :attr:`url`.

    Raises
    ------
    ValueError
        If the URL carries credentials.
    """

    def __init__(self, url: str | os.PathLike[str] | None = None, **storage_options: Any) -> None:
        raw = os.fspath(url) if url is not None else str(settings.read(settings.STORE))
        reject_credentials_in_url(raw)
        self.url = canonical_url(raw)
        self._options = dict(storage_options)
        self._filesystem: Any = None
        self._root = ""

    # ------------------------------------------------------------------ identity
    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "options": self._options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        Store.__init__(self, state["url"], **state["options"])

    @property
    def is_local(self) -> bool:
        """Whether the store is a folder on this machine's file system."""
        return "://" not in self.url

    @property
    def fs(self) -> Any:
        """The fsspec filesystem, opened on first use (and again after unpickling)."""
        if self._filesystem is None:
            self._filesystem, self._root = open_filesystem(self.url, **self._options)
        return self._filesystem

    def _join(self, relative: str) -> str:
        self.fs  # noqa: B018 - opens the filesystem and sets the root
        return f"{self._root.rstrip('/')}/{relative}" if relative else self._root

    def _path(self, key: str) -> str:
        return self._join(validate_key(key))

    def _relative(self, path: str) -> str:
        prefix = self._root.rstrip("/") + "/"
        return path[len(prefix) :] if path.startswith(prefix) else path

    def full_path(self, key: str) -> str:
        """Return the absolute path (local) or URL (``gs://...``) of ``key``, for links."""
        path = self._path(key)
        return path if self.is_local else f"{self.url.partition('://')[0]}://{path.lstrip('/')}"

    # ------------------------------------------------------------------ bytes
    @contextlib.contextmanager
    def open_write(self, key: str) -> Iterator[BinaryIO]:
        """Write ``key`` through a file object; the object appears only if the block succeeds.

        Local stores stream into a hidden temporary file next to the key and
        :func:`os.replace` it over the key at the end; object stores buffer the bytes and
        upload them as one object. If the block raises, nothing is written and the
        previous version of the key stays readable.

        Parameters
        ----------
        key : str
            Destination key.

        Yields
        ------
        BinaryIO
            A writable binary file object.

        Raises
        ------
        ValueError
            If the key is invalid.
        """
        path = self._path(key)
        if self.is_local:
            with _local_write(path, os.replace) as handle:
                yield handle
        else:
            buffer = io.BytesIO()
            yield buffer
            self.fs.pipe_file(path, buffer.getvalue())

    def write_bytes(self, key: str, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` to ``key`` atomically (see :meth:`open_write`)."""
        with self.open_write(key) as handle:
            handle.write(data)

    def create_bytes(self, key: str, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` to ``key`` only if no object is there: the first of concurrent writers wins.

        Local stores write a hidden temporary file and hard-link it to the key
        (:func:`os.link` fails if the key exists, atomically, across processes); ``gs://``
        uploads with the precondition ``ifGenerationMatch=0``, which GCS checks atomically;
        ``memory://`` checks under a process-wide lock. (``gcp-storage-emulator`` ignores
        preconditions: against it only a key that exists before the write is refused.)

        Raises
        ------
        KeyExists
            If ``key`` already holds an object; it is left unchanged.
        ValueError
            If the key is invalid.
        """
        path = self._path(key)
        try:
            if self.is_local:
                with _local_write(path, os.link) as handle:
                    handle.write(data)
                return
            with _CREATE_LOCK:
                if self.exists(key):
                    raise FileExistsError(path)
                self.fs.pipe_file(path, bytes(data), mode="create")
                self.fs.invalidate_cache(path)
        except FileExistsError:
            raise KeyExists(key, "an object already exists under this key") from None

    def create_json(self, key: str, record: Any) -> None:
        """Write a JSON object to ``key`` only if no object is there (see :meth:`create_bytes`)."""
        self.create_bytes(key, _json_bytes(record))

    def write_many(self, objects: Mapping[str, bytes]) -> None:
        """Write several objects, each atomically; concurrently on object stores.

        Parameters
        ----------
        objects : Mapping[str, bytes]
            Key to bytes.
        """
        if self.is_local or len(objects) < 2:
            for key, data in objects.items():
                self.write_bytes(key, data)
            return
        self.fs.pipe({self._path(key): bytes(data) for key, data in objects.items()})

    def read_bytes(self, key: str) -> bytes:
        """Return the bytes of ``key``.

        Raises
        ------
        MissingRecord
            If the key does not exist (a ``KeyError``).
        ValueError
            If the key is invalid.
        """
        path = self._path(key)
        try:
            return self.fs.cat_file(path)
        except (FileNotFoundError, IsADirectoryError):
            raise MissingRecord(key, f"no such key in {self.url}") from None

    def read_many(self, keys: Iterable[str], *, skip_missing: bool = False) -> dict[str, bytes]:
        """Read many objects concurrently (one fsspec ``cat`` over all paths).

        Parameters
        ----------
        keys : iterable of str
            Keys to read.
        skip_missing : bool
            Leave out keys that do not exist (deleted between a listing and the read)
            instead of raising.

        Returns
        -------
        dict
            Key to bytes, in the order of ``keys``.

        Raises
        ------
        MissingRecord
            If a key does not exist and ``skip_missing`` is false.
        """
        keys = list(dict.fromkeys(keys))
        if not keys:
            return {}
        paths = {self._path(key): key for key in keys}
        found = self.fs.cat(list(paths), on_error="return")
        by_key = {paths.get(path) or paths[self.fs._strip_protocol(path)]: data for path, data in found.items()}
        result: dict[str, bytes] = {}
        for key in keys:
            data = by_key.get(key, FileNotFoundError(key))
            if isinstance(data, BaseException):
                if isinstance(data, (FileNotFoundError, IsADirectoryError)) and skip_missing:
                    continue
                if isinstance(data, (FileNotFoundError, IsADirectoryError)):
                    raise MissingRecord(key, f"no such key in {self.url}")
                raise data
            result[key] = data
        return result

    def exists(self, key: str) -> bool:
        """Whether ``key`` holds an object (checked afresh, not from a listing cache)."""
        path = self._path(key)
        self.fs.invalidate_cache(path)
        return bool(self.fs.isfile(path))

    def delete(self, key: str) -> None:
        """Delete ``key``.

        Raises
        ------
        MissingRecord
            If the key does not exist.
        """
        path = self._path(key)
        try:
            self.fs.rm_file(path)
        except FileNotFoundError:
            raise MissingRecord(key, f"no such key in {self.url}") from None
        finally:
            self.fs.invalidate_cache(path)

    def list(self, prefix: str = "") -> list[str]:
        """Return the keys under ``prefix``, sorted, fresh from the backend.

        Parameters
        ----------
        prefix : str
            ``""`` for every key, a folder such as ``"records/studies/"``, or the start
            of key names such as ``"raw/2.25.1"``.

        Returns
        -------
        list of str
            Keys relative to the store root; temporary files of writes in flight are
            never listed.
        """
        return sorted(self.versions(prefix))

    def versions(self, prefix: str = "") -> dict[str, str]:
        """Return each key under ``prefix`` with a token that changes whenever its object does.

        The token is the backend's own (a GCS generation, a local file's modification
        time in nanoseconds) with the size, so a reader can re-read only what changed
        since its last listing (:class:`~imaging_lib.store.catalog.Catalog` does).

        Parameters
        ----------
        prefix : str
            As for :meth:`list`.

        Returns
        -------
        dict
            Key to version token, sorted by key.
        """
        validate_key(prefix, allow_empty=True)
        base = self._join(prefix.rpartition("/")[0])
        self.fs.invalidate_cache(base)
        try:
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return {}
        versions = {}
        for path, info in found.items():
            key = self._relative(path)
            if key.startswith(prefix) and not any(part.startswith(".") for part in key.split("/")):
                versions[key] = _version_token(info)
        return dict(sorted(versions.items()))

    # ------------------------------------------------------------------ JSON
    def write_json(self, key: str, record: Any) -> None:
        """Write a JSON-serialisable object to ``key`` atomically (UTF-8, sorted keys)."""
        self.write_bytes(key, _json_bytes(record))

    def read_json(self, key: str) -> Any:
        """Read a JSON record.

        Raises
        ------
        MissingRecord
            If the key does not exist.
        UnreadableRecord
            If it is not valid JSON.
        """
        return _parse_json(key, self.read_bytes(key))

    def read_json_many(self, keys: Iterable[str], *, skip_missing: bool = False) -> dict[str, Any]:
        """Read many JSON records concurrently; see :meth:`read_many`.

        Raises
        ------
        MissingRecord
            If a key does not exist and ``skip_missing`` is false.
        UnreadableRecord
            If a record is not valid JSON.
        """
        return {key: _parse_json(key, data) for key, data in self.read_many(keys, skip_missing=skip_missing).items()}

    # ------------------------------------------------------------------ volumes
    def write_volume(self, key: str, volume: Volume) -> None:
        """Write a volume as gzipped NIfTI to ``key`` (which should end in ``.nii.gz``).

        The voxels stream through gzip into the store's writer, so no uncompressed copy
        of the volume is made.
        """
        from ..io.nifti import write_nifti_stream

        with self.open_write(key) as handle:
            write_nifti_stream(volume, handle, compress=True)

    def read_volume(self, key: str) -> Volume:
        """Read a NIfTI volume stored at ``key``, with what its study record keeps of its header.

        A series volume (``volumes/...``) gets back the metadata prediction needs from
        its DICOM header (modality, window, pseudonym; see
        :func:`imaging_lib.store.ingest_records.series_metadata`), so it predicts exactly as the
        volume read from its files did.

        Raises
        ------
        MissingRecord
            If the key does not exist.
        UnreadableImage
            If the object is not a readable NIfTI file.
        """
        from ..io.nifti import nifti_from_bytes

        volume = nifti_from_bytes(self.read_bytes(key), source=self.full_path(key))
        volume.metadata.update(self._header_metadata(key))
        volume.metadata["spacing"] = volume.spacing
        volume.metadata["orientation"] = "".join(volume.orientation)
        volume.metadata["store_key"] = key
        return volume

    def _header_metadata(self, key: str) -> dict[str, Any]:
        from . import ingest_records, layout, records

        parsed = layout.parse(key)
        if parsed is None or parsed.kind != "volume":
            return {}
        try:
            study = records.read_record(self, layout.study_record_key(parsed.study_uid))
        except (MissingRecord, UnreadableRecord):
            return {}
        return {name: value for name, value in ingest_records.series_metadata(study, key).items() if value is not None}


@contextlib.contextmanager
def _local_write(path: str, publish: Callable[[str, str], None]) -> Iterator[BinaryIO]:
    """Stream into a hidden temporary file next to ``path``, sync it, then ``publish(temporary, path)``.

    The temporary file is removed whatever happens; ``publish`` is :func:`os.replace`
    (overwrite) or :func:`os.link` (create only, ``FileExistsError`` if ``path`` exists).
    """
    folder, name = os.path.split(path)
    os.makedirs(folder, exist_ok=True)
    temporary = os.path.join(folder, f"{_TEMP_PREFIX}{uuid.uuid4().hex}-{name}")
    try:
        with open(temporary, "xb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        publish(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)


def _version_token(info: Mapping[str, Any]) -> str:
    """A token of one listed object's version: the backend's generation or time, and its size."""
    for name in ("generation", "mtime", "updated", "created", "LastModified"):
        if info.get(name) is not None:
            return f"{info[name]}:{info.get('size')}"
    return f"?:{info.get('size')}"


def _json_bytes(record: Any) -> bytes:
    """How records are stored: UTF-8 JSON with sorted keys, no NaN."""
    return json.dumps(record, indent=1, sort_keys=True, allow_nan=False).encode("utf-8")


def _parse_json(key: str, data: bytes) -> Any:
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnreadableRecord(key, f"not valid JSON ({exc})") from None
