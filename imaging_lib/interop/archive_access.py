"""Where a DICOMweb archive is, and how to log in to it without a secret ever showing.

* **Addresses** are ``dicomweb+http(s)://host:port/path`` (or plain ``http(s)://``).
  :func:`parse_archive_url` refuses an address carrying credentials (``user:password@``),
  a query or a fragment, and its error never repeats them, so every address the platform
  shows, logs or records is the base URL it returns.
* **Credentials** come from the environment through :mod:`imaging_lib.settings`:
  ``IMAGING_DICOMWEB_TOKEN`` (bearer), or ``IMAGING_DICOMWEB_USER`` with
  ``IMAGING_DICOMWEB_PASSWORD`` (HTTP basic). When the password (or, without a user, a
  token) is not in the environment and :mod:`keyring` is installed, the keyring entry of
  service ``imaging-lab dicomweb <scheme>://<host>:<port>`` is used (user name: the basic
  auth user, or ``bearer-token`` for a token).
* **Transport**: :func:`check_transport` lets credentials go only over ``https://`` or to
  this machine (127.0.0.1, ::1, localhost) unless the caller allows plain ``http://``.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from .. import settings
from ..errors import InsecureConnection

__all__ = [
    "ARCHIVE_PREFIX",
    "KEYRING_TOKEN_USER",
    "archive_auth",
    "check_transport",
    "keyring_service",
    "parse_archive_url",
]

ARCHIVE_PREFIX = "dicomweb+"
KEYRING_TOKEN_USER = "bearer-token"

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


# ---------------------------------------------------------------------------- addresses
def parse_archive_url(url: str) -> str:
    """Return the ``http(s)://`` base URL of an archive address, or raise naming what is wrong.

    Parameters
    ----------
    url : str
        ``dicomweb+http://host:port/dicom-web``, ``dicomweb+https://...`` or plain
        ``http(s)://...``.

    Returns
    -------
    str
        ``scheme://host[:port]/path`` without a trailing ``/``.

    Raises
    ------
    ValueError
        If the scheme is not http(s), there is no host, or the address carries
        credentials, a query or a fragment (the message never repeats them).
    """
    text = str(url).strip()
    plain = text[len(ARCHIVE_PREFIX) :] if text.startswith(ARCHIVE_PREFIX) else text
    parts = urlsplit(plain)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{parts.scheme or '?'}://...: an archive address is dicomweb+http(s)://host:port/path")
    if "@" in parts.netloc:
        raise ValueError(
            f"{parts.scheme}://...: put archive credentials in IMAGING_DICOMWEB_USER/PASSWORD or "
            "IMAGING_DICOMWEB_TOKEN (or a keyring), never in the address"
        )
    if parts.query or parts.fragment or "?" in plain or "#" in plain:
        raise ValueError(f"{parts.scheme}://{parts.hostname}: an archive address takes no query or fragment")
    if not parts.hostname:
        raise ValueError(f"{parts.scheme}://: the archive address has no host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{parts.scheme}://{parts.hostname}: the port is not a number") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}{f':{port}' if port else ''}{parts.path.rstrip('/')}"


def _origin(base_url: str) -> str:
    parts = urlsplit(base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}:{port}"


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ---------------------------------------------------------------------------- credentials
def keyring_service(base_url: str) -> str:
    """The keyring service name under which an archive's secret is looked up.

    ``keyring set "imaging-lab dicomweb http://127.0.0.1:8042" alice`` stores alice's
    password for the archive at ``dicomweb+http://127.0.0.1:8042/...``.
    """
    return f"imaging-lab dicomweb {_origin(base_url)}"


def _keyring_secret(base_url: str, user: str) -> str | None:
    try:
        import keyring
        from keyring.errors import KeyringError
    except ImportError:
        return None
    try:
        return keyring.get_password(keyring_service(base_url), user)
    except KeyringError:
        return None


class _BearerAuth:
    """``Authorization: Bearer <token>`` on every request; its repr never shows the token."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: Any) -> Any:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "BearerAuth(<hidden>)"


def archive_auth(base_url: str) -> Any:
    """The credentials to send to ``base_url``, or ``None``: environment first, then a keyring.

    Parameters
    ----------
    base_url : str
        The archive's base URL (:func:`parse_archive_url`).

    Returns
    -------
    requests auth object or None
        HTTP basic (user and password) or bearer (token).

    Raises
    ------
    ValueError
        If both a token and a user are set, or a user is set without any password.
    """
    from requests.auth import HTTPBasicAuth

    token = settings.read(settings.DICOMWEB_TOKEN)
    user = settings.read(settings.DICOMWEB_USER)
    if token and user:
        raise ValueError(
            f"{settings.DICOMWEB_TOKEN.name} and {settings.DICOMWEB_USER.name} are both set: choose bearer or basic"
        )
    if user:
        password = settings.read(settings.DICOMWEB_PASSWORD) or _keyring_secret(base_url, user)
        if password is None:
            raise ValueError(
                f"{settings.DICOMWEB_USER.name} is set but no password: set {settings.DICOMWEB_PASSWORD.name} "
                f"or store it with keyring under {keyring_service(base_url)!r}"
            )
        return HTTPBasicAuth(user, password)
    token = token or _keyring_secret(base_url, KEYRING_TOKEN_USER)
    return _BearerAuth(token) if token else None


def check_transport(base_url: str, credentials: Any, *, allow_insecure: bool = False) -> None:
    """Refuse to send ``credentials`` unencrypted to another machine.

    Raises
    ------
    InsecureConnection
        If there are credentials, the address is ``http://`` to a host other than this
        machine, and ``allow_insecure`` is false.
    """
    parts = urlsplit(base_url)
    if credentials is not None and parts.scheme == "http" and not _is_loopback(parts.hostname) and not allow_insecure:
        raise InsecureConnection(
            base_url,
            "credentials would travel unencrypted over http:// to another machine: use https:// "
            "(or allow_insecure=True / --allow-insecure-http on a network you trust)",
        )
