"""Talk to a DICOMweb archive: its address, credentials, STOW-RS and WADO-RS, with typed errors.

:class:`DicomwebArchive` wraps a :class:`dicomweb_client.DICOMwebClient` over one
``requests`` session and adds what an archive in a hospital needs:

* **Addresses** are ``dicomweb+http(s)://host:port/path`` (or plain ``http(s)://``). An
  address carrying credentials (``user:password@``), a query or a fragment is refused:
  every address the platform shows, logs or records is :attr:`DicomwebArchive.url`,
  which holds neither.
* **Credentials** come from the environment through :mod:`imaging_lib.settings`:
  ``IMAGING_DICOMWEB_TOKEN`` (bearer), or ``IMAGING_DICOMWEB_USER`` with
  ``IMAGING_DICOMWEB_PASSWORD`` (HTTP basic). When the password (or, without a user, a
  token) is not in the environment and :mod:`keyring` is installed, the keyring entry
  of service ``imaging-lab dicomweb <scheme>://<host>:<port>`` is used (user name: the
  basic-auth user, or ``bearer-token`` for a token). Credentials are sent only over
  ``https://`` or to this machine (127.0.0.1, ::1, localhost) unless the caller says
  otherwise; they never appear in an error message, a record or a log line.
* **Faults** become typed errors (:mod:`imaging_lib.errors`): no connection or no answer
  within the timeout -> :class:`~imaging_lib.errors.ArchiveUnavailable`; 401/403 ->
  :class:`~imaging_lib.errors.ArchiveUnauthorized`; other 4xx ->
  :class:`~imaging_lib.errors.ArchiveRefused`; 5xx ->
  :class:`~imaging_lib.errors.ArchiveServerError`; a body cut short or malformed ->
  :class:`~imaging_lib.errors.ArchiveResponseInvalid`. Timeouts, lost connections,
  truncated bodies, 408, 429 and 5xx (but 501 and 505) are retried with exponential
  backoff (``Retry-After`` is honoured up to :data:`MAX_RETRY_AFTER_SECONDS`); other
  answers are not. Storing is safe to retry: an instance sent twice under the same SOP
  Instance UID is the same instance.
* **Bounds**: a retrieved body larger than :data:`imaging_lib.limits.MAX_IMAGE_BYTES` is
  refused while it streams in; multipart bodies are split strictly (the closing
  boundary must be there).
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from typing import Any, TypeVar
from urllib.parse import urlsplit

from .. import settings
from ..errors import (
    ArchiveError,
    ArchiveRefused,
    ArchiveResponseInvalid,
    ArchiveServerError,
    ArchiveUnauthorized,
    ArchiveUnavailable,
    InsecureConnection,
    MissingDependency,
    UnreadableImage,
)
from ..limits import MAX_IMAGE_BYTES

__all__ = [
    "ARCHIVE_PREFIX",
    "DEFAULT_TIMEOUT",
    "KEYRING_TOKEN_USER",
    "MAX_RETRY_AFTER_SECONDS",
    "DicomwebArchive",
    "archive_auth",
    "keyring_service",
    "parse_archive_url",
    "split_multipart",
]

ARCHIVE_PREFIX = "dicomweb+"
DEFAULT_TIMEOUT = (5.0, 60.0)
"""Seconds to connect, and to wait for each read of an answer."""
MAX_RETRY_AFTER_SECONDS = 30.0
KEYRING_TOKEN_USER = "bearer-token"

_RETRIED_STATUS = frozenset({408, 429, 500, 502, 503, 504, 507, 508, 509, 511})
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})

T = TypeVar("T")


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


# ---------------------------------------------------------------------------- multipart
def _content_type(header: str) -> tuple[str, dict[str, str]]:
    message = Message()
    message["content-type"] = header
    params = {str(k).lower(): str(v) for k, v in (message.get_params() or [])[1:]}
    return message.get_content_type(), params


def split_multipart(body: bytes, content_type: str, source: str) -> list[bytes]:
    """Split a ``multipart/related`` body into the contents of its parts, strictly.

    Parameters
    ----------
    body : bytes
        The whole body.
    content_type : str
        Its Content-Type header (with the ``boundary`` parameter).
    source : str
        Named in errors.

    Returns
    -------
    list of bytes
        Each part's content (its headers removed).

    Raises
    ------
    ArchiveResponseInvalid
        If the body is not multipart, has no boundary, or ends before its closing
        boundary (a truncated body), or a part has no header/content separator.
    """
    media, params = _content_type(content_type)
    boundary = params.get("boundary", "").encode("latin-1")
    if media != "multipart/related" or not boundary:
        raise ArchiveResponseInvalid(source, f"expected a multipart/related body with a boundary, got {media!r}")
    delimiter = b"\r\n--" + boundary
    framed = b"\r\n" + body
    close = framed.rfind(delimiter + b"--")
    if close < 0:
        raise ArchiveResponseInvalid(
            source, f"multipart body of {len(body)} bytes ends before its closing boundary (truncated)"
        )
    parts = []
    for piece in framed[:close].split(delimiter)[1:]:
        _head, separator, content = piece.partition(b"\r\n\r\n")
        if not separator:
            raise ArchiveResponseInvalid(source, "a multipart part has no blank line after its headers")
        parts.append(content)
    return parts


# ---------------------------------------------------------------------------- the archive
@dataclass(frozen=True)
class _Attempt:
    """What one failed attempt left: the error to raise if it was the last, and whether to retry."""

    error: ArchiveError
    retry: bool
    wait: float | None = None


class DicomwebArchive:
    """One DICOMweb archive: STOW-RS and WADO-RS with credentials, retries and typed errors.

    Parameters
    ----------
    url : str
        ``dicomweb+http(s)://host:port/path`` (see :func:`parse_archive_url`).
    auth : requests auth object, "environment" or None
        Credentials; by default from the environment or a keyring (:func:`archive_auth`).
    timeout : float or (float, float)
        Seconds to connect and to wait for each read of an answer.
    attempts : int
        Tries of one request before its error is raised (at least 1).
    backoff : float
        Seconds before the second try; doubled before each next one.
    allow_insecure : bool
        Send credentials over plain ``http://`` to another machine.

    Raises
    ------
    ValueError
        If the address or the credential settings are invalid.
    InsecureConnection
        If credentials would go unencrypted to another machine and ``allow_insecure`` is false.
    MissingDependency
        If dicomweb-client is not installed.
    """

    def __init__(
        self,
        url: str,
        *,
        auth: Any = "environment",
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        attempts: int = 3,
        backoff: float = 0.5,
        allow_insecure: bool = False,
    ) -> None:
        self.url = parse_archive_url(url)
        try:
            import requests
            from dicomweb_client import DICOMwebClient
        except ImportError:
            raise MissingDependency(self.url, "DICOMweb needs dicomweb-client: pip install dicomweb-client") from None
        credentials = archive_auth(self.url) if isinstance(auth, str) and auth == "environment" else auth
        parts = urlsplit(self.url)
        insecure = credentials is not None and parts.scheme == "http" and not _is_loopback(parts.hostname)
        if insecure and not allow_insecure:
            raise InsecureConnection(
                self.url,
                "credentials would travel unencrypted over http:// to another machine: use https:// "
                "(or allow_insecure=True / --allow-insecure-http on a network you trust)",
            )
        self.attempts = max(1, int(attempts))
        self.backoff = float(backoff)
        self.timeout = timeout
        self.session = requests.Session()
        self.session.auth = credentials
        self.client = DICOMwebClient(self.url, session=self.session, timeout=timeout)
        self.client.set_http_retry_params(retry=False)  # one retry policy: ours, below

    def __repr__(self) -> str:
        return f"DicomwebArchive({self.url!r})"

    def close(self) -> None:
        """Close the connections of the session."""
        self.session.close()

    def __enter__(self) -> DicomwebArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ retries
    def _classify(self, what: str, exc: Exception) -> _Attempt:
        import requests

        where = f"{self.url} ({what})"
        if isinstance(exc, requests.HTTPError) and exc.response is not None:
            response = exc.response
            status = response.status_code
            detail = _short_text(response)
            if status in (401, 403):
                hint = "credentials missing or wrong" if status == 401 else "the credentials lack the right"
                return _Attempt(ArchiveUnauthorized(where, f"HTTP {status}: {hint}{detail}", status), retry=False)
            if status in _RETRIED_STATUS:
                error: ArchiveError = (
                    ArchiveServerError(where, f"HTTP {status}{detail}", status)
                    if status >= 500
                    else ArchiveRefused(where, f"HTTP {status}{detail}", status)
                )
                return _Attempt(error, retry=True, wait=_retry_after(response))
            if status >= 500:
                return _Attempt(ArchiveServerError(where, f"HTTP {status}{detail}", status), retry=False)
            return _Attempt(ArchiveRefused(where, f"HTTP {status}{detail}", status), retry=False)
        if isinstance(exc, requests.Timeout):
            return _Attempt(ArchiveUnavailable(where, f"no answer within {self._timeout_text()}"), retry=True)
        if isinstance(exc, requests.exceptions.ChunkedEncodingError):
            return _Attempt(ArchiveResponseInvalid(where, "the answer was cut short (truncated body)"), retry=True)
        if isinstance(exc, requests.ConnectionError):
            return _Attempt(ArchiveUnavailable(where, "cannot connect (archive down or unreachable)"), retry=True)
        if isinstance(exc, requests.exceptions.InvalidJSONError):
            return _Attempt(ArchiveResponseInvalid(where, "the answer is not valid JSON (truncated?)"), retry=True)
        if isinstance(exc, ArchiveResponseInvalid):
            return _Attempt(exc, retry=True)
        if isinstance(exc, requests.RequestException):
            return _Attempt(ArchiveUnavailable(where, f"request failed ({type(exc).__name__})"), retry=False)
        raise exc

    def _timeout_text(self) -> str:
        timeout = self.timeout
        return f"{timeout[1]:g} s" if isinstance(timeout, tuple) else f"{timeout:g} s"

    def _with_retries(self, what: str, request: Callable[[], T]) -> T:
        """Run ``request`` until it succeeds, or raise the typed error of its last attempt."""
        last: _Attempt | None = None
        for attempt in range(self.attempts):
            if last is not None:
                pause = self.backoff * 2 ** (attempt - 1)
                time.sleep(min(max(pause, last.wait or 0.0), MAX_RETRY_AFTER_SECONDS))
            try:
                return request()
            except Exception as exc:  # classified below; anything unknown is re-raised
                last = self._classify(what, exc)
                if not last.retry:
                    raise last.error from None
        assert last is not None
        error = last.error
        suffix = f" after {self.attempts} attempts" if self.attempts > 1 else ""
        raise type(error)(error.source, f"{error.reason}{suffix}", error.status) from None

    # ------------------------------------------------------------------ STOW-RS
    def store(self, dataset: Any) -> None:
        """Store one instance with STOW-RS and check the archive's answer names it as stored.

        Parameters
        ----------
        dataset : pydicom.Dataset
            A complete instance (with its file meta).

        Raises
        ------
        ArchiveUnavailable, ArchiveUnauthorized, ArchiveRefused, ArchiveServerError, ArchiveResponseInvalid
            See the module's docstring.
        """
        import requests

        sop_uid = str(dataset.SOPInstanceUID)
        what = f"STOW-RS of {sop_uid}"

        def stow() -> Any:
            try:
                return self.client.store_instances([dataset])
            except requests.RequestException:
                raise
            except (ValueError, KeyError, TypeError, SyntaxError) as exc:  # dicomweb-client parsing the answer
                raise ArchiveResponseInvalid(
                    f"{self.url} ({what})", f"the STOW-RS answer is not readable ({type(exc).__name__})"
                ) from None

        answer = self._with_retries(what, stow)
        failed = [str(item.get("ReferencedSOPInstanceUID", "")) for item in answer.get("FailedSOPSequence", [])]
        if failed:
            reasons = {int(item.get("FailureReason", 0) or 0) for item in answer.get("FailedSOPSequence", [])}
            raise ArchiveRefused(f"{self.url} ({what})", f"the archive did not store it (failure reasons {reasons})")
        stored = {str(item.get("ReferencedSOPInstanceUID", "")) for item in answer.get("ReferencedSOPSequence", [])}
        if stored and sop_uid not in stored:
            raise ArchiveResponseInvalid(f"{self.url} ({what})", "the STOW-RS answer does not name the instance sent")

    # ------------------------------------------------------------------ WADO-RS
    def retrieve_instance(self, study_uid: str, series_uid: str, sop_uid: str) -> Any:
        """Retrieve one instance with WADO-RS, in any transfer syntax the archive holds.

        Returns
        -------
        pydicom.Dataset

        Raises
        ------
        ArchiveUnavailable, ArchiveUnauthorized, ArchiveRefused, ArchiveServerError
            See the module's docstring (a missing instance is a 404: ``ArchiveRefused``).
        ArchiveResponseInvalid
            If the body is truncated, holds no or several parts, or a part is not DICOM.
        """
        path = "/".join(("studies", _uid(study_uid), "series", _uid(series_uid), "instances", _uid(sop_uid)))
        parts = self._with_retries(f"WADO-RS of {sop_uid}", lambda: self._get_parts(path))
        if len(parts) != 1:
            raise ArchiveResponseInvalid(f"{self.url} (WADO-RS of {sop_uid})", f"{len(parts)} parts, expected 1")
        return _dataset(parts[0], f"{self.url} (WADO-RS of {sop_uid})")

    def retrieve_series(self, study_uid: str, series_uid: str) -> list[Any]:
        """Retrieve every instance of a series with WADO-RS (held in memory: small series only)."""
        path = "/".join(("studies", _uid(study_uid), "series", _uid(series_uid)))
        where = f"{self.url} (WADO-RS of series {series_uid})"
        return [_dataset(part, where) for part in self._with_retries(where, lambda: self._get_parts(path))]

    def _get_parts(self, path: str) -> list[bytes]:
        accept = 'multipart/related; type="application/dicom"; transfer-syntax=*'
        response = self.session.get(f"{self.url}/{path}", headers={"Accept": accept}, timeout=self.timeout, stream=True)
        with response:
            response.raise_for_status()
            body = _read_bounded(response, f"{self.url}/{path}")
        return split_multipart(body, response.headers.get("Content-Type", ""), f"{self.url}/{path}")

    def instance_uids(self, study_uid: str) -> set[str]:
        """The SOP Instance UIDs the archive holds for a study (QIDO-RS; empty if it has none)."""
        found = self._with_retries(
            f"QIDO-RS of study {study_uid}",
            lambda: self.client.search_for_instances(study_instance_uid=_uid(study_uid)),
        )
        return {str(item.get("00080018", {}).get("Value", [""])[0]) for item in found}


# ---------------------------------------------------------------------------- helpers
def _uid(value: str) -> str:
    text = str(value)
    if len(text) > 64 or not _UID.fullmatch(text):
        raise ValueError(f"{text[:70]!r} is not a DICOM UID")
    return text


def _short_text(response: Any) -> str:
    try:
        text = response.text[:200]
    except (UnicodeDecodeError, AttributeError):
        return ""
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return f": {text}" if text else ""


def _retry_after(response: Any) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return min(float(value), MAX_RETRY_AFTER_SECONDS)
    except ValueError:
        return None


def _read_bounded(response: Any, source: str, limit: int = MAX_IMAGE_BYTES) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ArchiveResponseInvalid(source, f"the answer declares {declared} bytes, over the limit of {limit}")
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(chunk_size=1 << 20):
        size += len(chunk)
        if size > limit:
            raise ArchiveResponseInvalid(source, f"the answer exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _dataset(part: bytes, source: str) -> Any:
    from ..io.dicom_dataset import parse_dicom

    try:
        return parse_dicom(part, source)
    except UnreadableImage as exc:
        raise ArchiveResponseInvalid(source, f"a part is not a complete DICOM instance ({exc.reason})") from None
