"""The de-identification key: where it comes from, how it is kept, and the fingerprint a store keeps.

The key never lives in the data. It is, in order:

1. ``secret=`` given to :func:`load_key` (an application that manages its own keys);
2. ``$IMAGING_DEID_SECRET`` (a shared project key from a secret manager);
3. the key file: ``$IMAGING_DEID_KEY_FILE``, else ``imaging-lab/deid.key`` in the
   user's configuration folder (platformdirs: ``$XDG_CONFIG_HOME`` or ``~/.config`` on
   Linux, ``~/Library/Application Support`` on macOS, ``%APPDATA%`` on Windows).

The key file is created on first use with 32 random bytes (64 hex characters): a private
temporary file is created with ``O_CREAT | O_EXCL`` and mode 0600, written, synced, and
linked into place with :func:`os.link`, which, like ``O_EXCL``, fails if the name
exists. Two processes racing to create it end with one key, and a crash never leaves a
half-written one. A key file that group or others may read (mode wider than 0600), or
that is not a regular file, is refused with :class:`~imaging_lib.errors.KeyFileUnsafe`.

A store keeps only the key's **fingerprint** (:attr:`DeidKey.fingerprint`): the
HMAC-SHA256 of a fixed label under the key. It names the key without revealing anything
that keys a pseudonym; :mod:`imaging_lib.ingestion.key_binding` records it in a store
and refuses an ingest with another key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path

from .. import settings
from ..errors import KeyFileUnsafe
from ..limits import SECRET_MIN_BYTES
from .deidentify import check_secret

__all__ = [
    "FINGERPRINT_LABEL",
    "KEY_FILE_NAME",
    "DeidKey",
    "create_key_file",
    "key_file_path",
    "load_key",
    "read_key_file",
]

KEY_FILE_NAME = "deid.key"
APP_NAME = "imaging-lab"
FINGERPRINT_LABEL = b"imaging-lab de-identification key fingerprint v1"
"""The message whose HMAC under the key is the key's fingerprint."""

_PRIVATE = 0o600


@dataclass(frozen=True, repr=False)
class DeidKey:
    """A de-identification key and where it came from. Its ``repr`` shows only the fingerprint.

    Attributes
    ----------
    secret : bytes
        The key (at least 16 bytes).
    origin : str
        ``"secret= argument"``, ``"$IMAGING_DEID_SECRET"`` or the key file's path.
    """

    secret: bytes
    origin: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "secret", check_secret(self.secret))

    @property
    def fingerprint(self) -> str:
        """HMAC-SHA256 of :data:`FINGERPRINT_LABEL` under the key, as 64 hex characters."""
        return hmac.new(self.secret, FINGERPRINT_LABEL, hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return f"DeidKey(origin={self.origin!r}, fingerprint={self.fingerprint[:12]}…)"

    __str__ = __repr__


# ---------------------------------------------------------------------------- the key file
def key_file_path() -> Path:
    """Where the user's key file is: ``$IMAGING_DEID_KEY_FILE``, else the user configuration folder."""
    configured = settings.read(settings.DEID_KEY_FILE)
    if configured:
        return Path(configured).expanduser()
    from platformdirs import user_config_path

    return user_config_path(APP_NAME, appauthor=False) / KEY_FILE_NAME


def read_key_file(path: Path) -> bytes:
    """Read a key file, refusing one others may read.

    Raises
    ------
    KeyFileUnsafe
        If the file is not a regular file, group or others have any permission on it
        (POSIX), or it holds fewer than 16 bytes.
    FileNotFoundError
        If there is no such file.
    """
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise KeyFileUnsafe(path, "is not a regular file")
        mode = stat.S_IMODE(status.st_mode)
        if os.name == "posix" and mode & 0o077:
            raise KeyFileUnsafe(
                path,
                f"has mode {mode:04o}: group or others may read the key; run `chmod 600 {path}` "
                "(and consider who may have read it)",
            )
        key = os.read(descriptor, 4096).strip()
    finally:
        os.close(descriptor)
    if len(key) < SECRET_MIN_BYTES:
        raise KeyFileUnsafe(path, f"holds {len(key)} bytes; a key needs at least {SECRET_MIN_BYTES}")
    return key


def create_key_file(path: Path, key: bytes | None = None) -> bool:
    """Create the key file exclusively, mode 0600; return whether this call created it.

    Parameters
    ----------
    path : Path
        Where the key file goes (its folder is created with mode 0700).
    key : bytes, optional
        The key to write; default 32 random bytes as 64 hex characters.

    Returns
    -------
    bool
        ``False`` if a key file already existed (it is left as it was).
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    content = key if key is not None else secrets.token_hex(32).encode("ascii")
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    descriptor = os.open(temporary, flags, _PRIVATE)
    try:
        if os.name == "posix":
            os.fchmod(descriptor, _PRIVATE)  # whatever the umask
        os.write(descriptor, content + b"\n")
        os.fsync(descriptor)
        os.close(descriptor)
        descriptor = -1
        os.link(temporary, path)
    except FileExistsError:
        return False
    finally:
        if descriptor >= 0:
            os.close(descriptor)
        temporary.unlink(missing_ok=True)
    return True


def load_key(secret: bytes | str | None = None, *, create: bool = True) -> DeidKey:
    """Return the de-identification key: ``secret``, else ``$IMAGING_DEID_SECRET``, else the key file.

    Parameters
    ----------
    secret : bytes or str, optional
        An explicit key, which wins.
    create : bool
        Create the key file (exclusively, mode 0600) if it does not exist.

    Returns
    -------
    DeidKey

    Raises
    ------
    ValueError
        If ``secret`` or ``$IMAGING_DEID_SECRET`` is shorter than 16 bytes.
    KeyFileUnsafe
        If the key file may be read by others, is not a regular file or is too short.
    FileNotFoundError
        If there is no key file and ``create`` is false.
    """
    if secret is not None:
        return DeidKey(check_secret(secret), "secret= argument")
    environment = settings.read(settings.DEID_SECRET)
    if environment:
        return DeidKey(check_secret(environment), f"${settings.DEID_SECRET.name}")
    path = key_file_path()
    if create and not path.exists():
        create_key_file(path)
    return DeidKey(read_key_file(path), str(path))
