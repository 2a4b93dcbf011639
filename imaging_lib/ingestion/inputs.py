"""What ingest reads: files, folders, zip archives, ``gs://`` objects and uploads, each read with bounds.

:func:`expand` turns one source into :class:`Input` (a file to read) and :class:`Skipped`
(something left out, with the reason) entries:

* folders are walked in sorted order, a folder's files before its subfolders, so the
  files of one folder arrive together (ingest stores the series of a folder when it
  moves past it). Hidden files and folders, symbolic links that loop or dangle, a
  folder reached twice through links, and anything that is not a regular file are
  skipped with a reason;
* :func:`open_archive` lists a zip archive without inflating anything: its members'
  declared sizes and count are checked against the limits of the whole archive (a zip
  inside it counts into its budget, at most :data:`~imaging_lib.limits.MAX_ZIP_DEPTH`
  deep), and a refused archive raises :class:`~imaging_lib.errors.UnsafeArchive`.
  Members inflate one at a time when read, and never past their declared size
  (:mod:`zipfile` stops there and checks the CRC). Members with ``.``/``..`` segments
  or absolute paths, hidden names, ``__MACOSX`` forks and symbolic links are skipped;
* every file is read into memory only up to :data:`~imaging_lib.limits.MAX_FILE_BYTES`.
"""

from __future__ import annotations

import errno
import io
import os
import posixpath
import re
import stat
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from ..errors import ImageTooLarge, UnreadableImage, UnsafeArchive
from ..limits import MAX_FILE_BYTES, MAX_ZIP_DEPTH, MAX_ZIP_INFLATED_BYTES, MAX_ZIP_MEMBERS
from ..store.objects import open_filesystem

__all__ = ["ArchiveBudget", "Input", "Skipped", "Source", "expand", "is_upload", "open_archive"]

Source = str | os.PathLike[str] | tuple[str, bytes]


@dataclass
class ArchiveBudget:
    """What the members of one zip archive given to ingest (nested archives included) may still declare."""

    members: int = MAX_ZIP_MEMBERS
    inflated_bytes: int = MAX_ZIP_INFLATED_BYTES

    def spend(self, archive: str, members: int, inflated_bytes: int) -> None:
        """Take an archive's members and declared sizes from the budget, or refuse the archive.

        Raises
        ------
        UnsafeArchive
            If the archive would exceed the member count or the inflated size left.
        """
        if members > self.members:
            raise UnsafeArchive(
                archive, f"holds {members} members, over the {self.members} left of the limit of {MAX_ZIP_MEMBERS}"
            )
        if inflated_bytes > self.inflated_bytes:
            raise UnsafeArchive(
                archive,
                f"declares {inflated_bytes} bytes inflated, over the {self.inflated_bytes} left of the limit of "
                f"{MAX_ZIP_INFLATED_BYTES}",
            )
        self.members -= members
        self.inflated_bytes -= inflated_bytes


@dataclass(frozen=True)
class Input:
    """One file to ingest.

    Attributes
    ----------
    name : str
        Where it came from (a path, a URL, ``archive.zip::member``, an upload's name).
    read : callable
        Returns its bytes, at most :data:`~imaging_lib.limits.MAX_FILE_BYTES`.
    group : str
        The folder or archive folder it came from: inputs of one group arrive together.
    depth : int
        Zip nesting: 0 for a file given or found in a folder, 1 for a member of an
        archive given, 2 for a member of an archive inside it.
    budget : ArchiveBudget or None
        The budget of the outermost archive it came from.
    """

    name: str
    read: Callable[[], bytes] = field(repr=False)
    group: str
    depth: int = 0
    budget: ArchiveBudget | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Skipped:
    """Something found and left out on purpose, with the reason."""

    source: str
    reason: str


def is_upload(source: Any) -> bool:
    """Whether ``source`` is an in-memory upload: a ``(name, bytes)`` pair."""
    return isinstance(source, tuple) and len(source) == 2 and isinstance(source[1], (bytes, bytearray, memoryview))


def _bounded(name: str, size: int) -> None:
    if size > MAX_FILE_BYTES:
        raise ImageTooLarge(name, f"file of {size} bytes, over the limit of {MAX_FILE_BYTES} read into memory")


# ---------------------------------------------------------------------------- local folders
def _local_reader(path: Path) -> Callable[[], bytes]:
    def read() -> bytes:
        try:
            with open(path, "rb") as handle:
                _bounded(str(path), os.fstat(handle.fileno()).st_size)
                data = handle.read()
        except OSError as exc:
            raise UnreadableImage(path, f"cannot open: {exc.strerror or exc}") from None
        _bounded(str(path), len(data))  # it may have grown since
        return data

    return read


def _stat_or_reason(path: Path) -> os.stat_result | str:
    try:
        return path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop"
        if path.is_symlink():
            return "broken symbolic link"
        return f"cannot read: {exc.strerror or exc}"


def _walk(root: Path) -> Iterator[Input | Skipped]:
    """A folder's regular files, then its subfolders, sorted; what is left out, with the reason."""
    seen: set[tuple[int, int]] = set()

    def visit(folder: Path, ancestors: frozenset[tuple[int, int]]) -> Iterator[Input | Skipped]:
        try:
            names = sorted(os.listdir(folder))
        except OSError as exc:
            yield Skipped(str(folder), f"cannot list: {exc.strerror or exc}")
            return
        subfolders: list[tuple[Path, tuple[int, int]]] = []
        for name in names:
            path = folder / name
            if name.startswith("."):
                yield Skipped(str(path), "hidden folder" if path.is_dir() else "hidden file")
                continue
            status = _stat_or_reason(path)
            if isinstance(status, str):
                yield Skipped(str(path), status)
            elif stat.S_ISDIR(status.st_mode):
                identity = (status.st_dev, status.st_ino)
                if identity in ancestors:
                    yield Skipped(str(path), "symbolic link loop (a folder that contains itself)")
                elif identity in seen:
                    yield Skipped(str(path), "folder already read through another path")
                else:
                    seen.add(identity)
                    subfolders.append((path, identity))
            elif stat.S_ISREG(status.st_mode):
                yield Input(str(path), _local_reader(path), group=str(folder))
            else:
                yield Skipped(str(path), "not a regular file (a device, pipe or socket)")
        for path, identity in subfolders:
            yield from visit(path, ancestors | {identity})

    status = root.stat()
    seen.add((status.st_dev, status.st_ino))
    yield from visit(root, frozenset(seen))


# ---------------------------------------------------------------------------- gs:// and uploads
def _remote_reader(filesystem: Any, location: str, name: str, size: Any) -> Callable[[], bytes]:
    def read() -> bytes:
        if size is not None:
            _bounded(name, int(size))
        try:
            data = filesystem.cat_file(location)
        except FileNotFoundError:
            raise UnreadableImage(name, "no such object") from None
        _bounded(name, len(data))
        return data

    return read


def _remote_inputs(url: str) -> Iterator[Input | Skipped]:
    filesystem, path = open_filesystem(url)
    protocol = url.partition("://")[0]
    filesystem.invalidate_cache(path)
    found = filesystem.find(path, detail=True) if filesystem.isdir(path) else {path: {"size": None}}
    for location in sorted(found):
        name = f"{protocol}://{location.lstrip('/')}"
        relative = location[len(path) :].lstrip("/")
        if any(part.startswith(".") for part in relative.split("/") if part):
            yield Skipped(name, "hidden object")
            continue
        reader = _remote_reader(filesystem, location, name, found[location].get("size"))
        yield Input(name, reader, group=posixpath.dirname(name))


def expand(source: Source) -> Iterator[Input | Skipped]:
    """Every file ``source`` stands for, and what was left out of it.

    Parameters
    ----------
    source : path, URL or (name, bytes)
        A local file or folder, a ``gs://`` object or prefix, or an upload.

    Yields
    ------
    Input or Skipped

    Raises
    ------
    OSError, ImagingError
        If the source cannot be listed (a missing folder is an :class:`Input` whose
        read fails instead).
    """
    if is_upload(source):
        name, data = cast(tuple[str, bytes], source)

        def read() -> bytes:
            _bounded(str(name), len(data))
            return bytes(data)

        yield Input(str(name), read, group=posixpath.dirname(str(name)) or "<upload>")
        return
    text = os.fspath(source)  # type: ignore[arg-type]
    if "://" in text and not text.startswith("file://"):
        yield from _remote_inputs(text)
        return
    path = Path(text.removeprefix("file://"))
    if path.is_dir():
        yield from _walk(path)
    else:
        yield Input(str(path), _local_reader(path), group=str(path.parent))


# ---------------------------------------------------------------------------- zip archives
_DRIVE = re.compile(r"^[A-Za-z]:")


def _member_skip_reason(info: zipfile.ZipInfo) -> str | None:
    parts = info.filename.replace("\\", "/").split("/")
    if info.filename.startswith(("/", "\\")) or _DRIVE.match(info.filename) or any(p in (".", "..") for p in parts):
        return "unsafe path in the archive (a '.' or '..' segment, or an absolute path)"
    if "__MACOSX" in parts:
        return "macOS resource fork"
    if any(part.startswith(".") for part in parts[:-1]):
        return "in a hidden folder"
    if parts[-1].startswith("."):
        return "hidden file"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symbolic link (not followed)"
    return None


def open_archive(archive: Input, data: bytes) -> list[Input | Skipped]:
    """List a zip archive's members as inputs (and what is skipped), inflating nothing.

    Parameters
    ----------
    archive : Input
        The archive (a file given, or a member of an outer archive).
    data : bytes
        Its bytes.

    Returns
    -------
    list of Input or Skipped
        In archive order, sorted by folder so a folder's members arrive together.

    Raises
    ------
    UnsafeArchive
        Nested deeper than :data:`~imaging_lib.limits.MAX_ZIP_DEPTH`, or its members
        would exceed what is left of the member count or inflated size limits.
    UnreadableImage
        A corrupt archive.
    """
    depth = archive.depth + 1
    if depth > MAX_ZIP_DEPTH:
        raise UnsafeArchive(archive.name, f"a zip archive nested {depth} deep, over the limit of {MAX_ZIP_DEPTH}")
    try:
        bundle = zipfile.ZipFile(io.BytesIO(data))
        infos = [info for info in bundle.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise UnreadableImage(archive.name, f"corrupt zip archive ({exc})") from None
    budget = archive.budget if archive.budget is not None else ArchiveBudget()
    reasons = {info.filename: _member_skip_reason(info) for info in infos}
    wanted = [info for info in infos if reasons[info.filename] is None]
    budget.spend(archive.name, len(infos), sum(info.file_size for info in wanted))

    def reader(info: zipfile.ZipInfo, name: str) -> Callable[[], bytes]:
        def read() -> bytes:
            _bounded(name, info.file_size)
            try:
                return bundle.read(info)  # stops at the declared size and checks the CRC
            except (zipfile.BadZipFile, RuntimeError, OSError, ValueError, EOFError, NotImplementedError) as exc:
                raise UnreadableImage(name, f"cannot extract from zip ({exc})") from None

        return read

    entries: list[Input | Skipped] = []
    for info in sorted(infos, key=lambda info: posixpath.split(info.filename)):
        name = f"{archive.name}::{info.filename}"
        reason = reasons[info.filename]
        if reason is not None:
            entries.append(Skipped(name, reason))
        else:
            group = f"{archive.name}::{posixpath.dirname(info.filename)}"
            entries.append(Input(name, reader(info, name), group=group, depth=depth, budget=budget))
    return entries
