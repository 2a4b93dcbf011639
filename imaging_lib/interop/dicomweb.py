"""Talk to a DICOMweb archive: STOW-RS, WADO-RS and QIDO-RS with retries and typed errors.

:class:`DicomwebArchive` wraps a :class:`dicomweb_client.DICOMwebClient` over one
``requests`` session and adds what an archive in a hospital needs:

* **Addresses and credentials** (:mod:`imaging_lib.interop.archive_access`): an address
  with credentials, a query or a fragment is refused; credentials come from the
  environment or a keyring, and go unencrypted to another machine only when allowed.
  Every address shown, logged or recorded is :attr:`DicomwebArchive.url`.
* **Faults** become typed errors (:mod:`imaging_lib.errors`): no connection or no answer
  within the timeout -> :class:`~imaging_lib.errors.ArchiveUnavailable`; 401/403 ->
  :class:`~imaging_lib.errors.ArchiveUnauthorized`; other 4xx ->
  :class:`~imaging_lib.errors.ArchiveRefused`; 5xx ->
  :class:`~imaging_lib.errors.ArchiveServerError`; a body cut short or malformed ->
  :class:`~imaging_lib.errors.ArchiveResponseInvalid`. Timeouts, lost connections,
  truncated bodies, 408, 429, 500, 502, 503 and 504 are retried with exponential
  backoff (``Retry-After`` is honoured up to :data:`MAX_RETRY_AFTER_SECONDS`); other
  answers are not. Storing is safe to retry: an instance sent twice under the same SOP
  Instance UID is the same instance.
* **Bounds**: a retrieved body larger than :data:`imaging_lib.limits.MAX_IMAGE_BYTES` is
  refused while it streams in; multipart bodies are split strictly (the closing
  boundary must be there).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from typing import Any, TypeVar

from ..errors import (
    ArchiveError,
    ArchiveRefused,
    ArchiveResponseInvalid,
    ArchiveServerError,
    ArchiveUnauthorized,
    ArchiveUnavailable,
    MissingDependency,
    UnreadableImage,
)
from ..limits import MAX_IMAGE_BYTES
from .archive_access import archive_auth, check_transport, parse_archive_url

__all__ = ["DEFAULT_TIMEOUT", "MAX_RETRY_AFTER_SECONDS", "DicomwebArchive", "split_multipart"]

DEFAULT_TIMEOUT = (5.0, 60.0)
"""Seconds to connect, and to wait for each read of an answer."""
MAX_RETRY_AFTER_SECONDS = 30.0

_RETRIED_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")

T = TypeVar("T")


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
        check_transport(self.url, credentials, allow_insecure=allow_insecure)
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
