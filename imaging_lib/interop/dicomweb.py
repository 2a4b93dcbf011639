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
* **Bounds**: a retrieved instance larger than :data:`imaging_lib.limits.MAX_IMAGE_BYTES`
  is refused while it streams in; a series (:meth:`DicomwebArchive.stream_series`) is
  split into its instances as it streams (:mod:`imaging_lib.interop.multipart`: one part
  in memory, the closing boundary required, parts and bytes bounded); a QIDO-RS answer
  is at most :data:`~imaging_lib.limits.MAX_HEADER_BYTES` and a query at most
  :data:`~imaging_lib.limits.MAX_QUERY_STUDIES` results. A gzip-encoded answer is
  inflated a chunk at a time (urllib3 bounds each step to the chunk asked for).
* **Identifiers**: queries and retrieves of original studies (:meth:`search_studies`,
  :meth:`search_series`, :meth:`stream_series`) never put a UID or the archive's own
  error text into an error: those may name the patient's studies.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import (
    ArchiveError,
    ArchiveRefused,
    ArchiveResponseInvalid,
    ArchiveServerError,
    ArchiveUnauthorized,
    ArchiveUnavailable,
    MissingDependency,
    QueryTooBroad,
    UnreadableImage,
)
from ..limits import MAX_HEADER_BYTES, MAX_IMAGE_BYTES, MAX_QUERY_STUDIES
from .archive_access import archive_auth, check_transport, parse_archive_url
from .multipart import iter_multipart

__all__ = ["DEFAULT_TIMEOUT", "MAX_RETRY_AFTER_SECONDS", "QIDO_PAGE", "DicomwebArchive"]

DEFAULT_TIMEOUT = (5.0, 60.0)
"""Seconds to connect, and to wait for each read of an answer."""
MAX_RETRY_AFTER_SECONDS = 30.0
QIDO_PAGE = 100
"""Results asked for per QIDO-RS request (``limit``); further pages follow with ``offset``."""

_CHUNK_BYTES = 1 << 20
_RETRIED_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")

T = TypeVar("T")


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
    def _classify(self, what: str, exc: Exception, echo: bool) -> _Attempt:
        import requests

        where = f"{self.url} ({what})"
        if isinstance(exc, requests.HTTPError) and exc.response is not None:
            response = exc.response
            status = response.status_code
            detail = _short_text(response) if echo else ""
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

    def _with_retries(self, what: str, request: Callable[[], T], *, echo: bool = True) -> T:
        """Run ``request`` until it succeeds, or raise the typed error of its last attempt.

        ``echo=False`` leaves the archive's own error text out of the error: a query or
        retrieve of original studies may be answered with their identifiers in it.
        """
        last: _Attempt | None = None
        for attempt in range(self.attempts):
            if last is not None:
                pause = self.backoff * 2 ** (attempt - 1)
                time.sleep(min(max(pause, last.wait or 0.0), MAX_RETRY_AFTER_SECONDS))
            try:
                return request()
            except Exception as exc:  # classified below; anything unknown is re-raised
                last = self._classify(what, exc, echo)
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
        what = f"WADO-RS of {sop_uid}"
        parts = self._with_retries(what, lambda: self._get_parts(path, what))
        if len(parts) != 1:
            raise ArchiveResponseInvalid(f"{self.url} (WADO-RS of {sop_uid})", f"{len(parts)} parts, expected 1")
        return _dataset(parts[0], f"{self.url} (WADO-RS of {sop_uid})")

    def _get_parts(self, path: str, what: str) -> list[bytes]:
        source = f"{self.url} ({what})"
        with self._get_multipart(path) as response:
            _check_declared_length(response, source, MAX_IMAGE_BYTES)
            chunks = response.iter_content(chunk_size=_CHUNK_BYTES)
            content_type = response.headers.get("Content-Type", "")
            return list(iter_multipart(chunks, content_type, source, max_total_bytes=MAX_IMAGE_BYTES))

    def _get_multipart(self, path: str) -> Any:
        """GET ``path`` as a multipart of DICOM instances in any transfer syntax; the open, checked response."""
        accept = 'multipart/related; type="application/dicom"; transfer-syntax=*'
        response = self.session.get(f"{self.url}/{path}", headers={"Accept": accept}, timeout=self.timeout, stream=True)
        try:
            response.raise_for_status()
        except Exception:
            response.close()
            raise
        return response

    def stream_series(
        self,
        study_uid: str,
        series_uid: str,
        on_instance: Callable[[bytes], None],
        *,
        on_restart: Callable[[], None] | None = None,
    ) -> int:
        """Retrieve a series with WADO-RS, handing over each instance as its part arrives.

        The body is read a network chunk at a time and split as it comes
        (:func:`~imaging_lib.interop.multipart.iter_multipart`): memory holds one part,
        never the series. A body cut short, a lost connection or a retried status starts
        the series again from its first instance, after ``on_restart`` has dropped what
        the attempt before handed over.

        Parameters
        ----------
        study_uid, series_uid : str
            The series' UIDs in the archive (never put into an error).
        on_instance : callable
            Called with each instance's bytes.
        on_restart : callable, optional
            Called before the second and later attempts.

        Returns
        -------
        int
            Instances handed over by the attempt that succeeded.

        Raises
        ------
        ArchiveUnavailable, ArchiveUnauthorized, ArchiveRefused, ArchiveServerError
            See the module's docstring (the archive's error text is left out).
        ArchiveResponseInvalid
            If every attempt was cut short or malformed, or the series came with no instance.
        """
        what = "WADO-RS of a series"
        path = "/".join(("studies", _uid(study_uid), "series", _uid(series_uid)))
        attempts = 0

        def attempt() -> int:
            nonlocal attempts
            if attempts and on_restart is not None:
                on_restart()
            attempts += 1
            count = 0
            with self._get_multipart(path) as response:
                chunks = response.iter_content(chunk_size=_CHUNK_BYTES)
                content_type = response.headers.get("Content-Type", "")
                for part in iter_multipart(chunks, content_type, f"{self.url} ({what})"):
                    on_instance(part)
                    count += 1
            if not count:
                raise ArchiveResponseInvalid(f"{self.url} ({what})", "the archive sent no instance of the series")
            return count

        return self._with_retries(what, attempt, echo=False)

    # ------------------------------------------------------------------ QIDO-RS
    def search_studies(self, filters: Mapping[str, str], fields: Sequence[str]) -> list[dict[str, Any]]:
        """The studies matching ``filters`` (QIDO-RS), page by page; at most ``MAX_QUERY_STUDIES``.

        Parameters
        ----------
        filters : mapping
            QIDO-RS matching keys (``{"PatientID": "...", "StudyDate": "20240101-"}``).
        fields : sequence of str
            Attributes to ask for besides the defaults (``includefield``).

        Returns
        -------
        list of dict
            DICOM JSON objects, one per study (empty if none matches).

        Raises
        ------
        QueryTooBroad
            If more studies match than one ingest takes.
        ArchiveUnavailable, ArchiveUnauthorized, ArchiveRefused, ArchiveServerError, ArchiveResponseInvalid
            See the module's docstring (the archive's error text is left out).
        """
        return self._search("studies", filters, fields, "0020000D", "QIDO-RS of studies")

    def search_series(self, study_uid: str, filters: Mapping[str, str], fields: Sequence[str]) -> list[dict[str, Any]]:
        """The series of one study matching ``filters`` (QIDO-RS); see :meth:`search_studies`."""
        path = f"studies/{_uid(study_uid)}/series"
        return self._search(path, filters, fields, "0020000E", "QIDO-RS of a study's series")

    def _search(
        self, path: str, filters: Mapping[str, str], fields: Sequence[str], uid_tag: str, what: str
    ) -> list[dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        offset = 0
        while True:
            params = [*filters.items(), *(("includefield", f) for f in fields)]
            params += [("limit", str(QIDO_PAGE)), ("offset", str(offset))]
            page = self._with_retries(what, functools.partial(self._qido, path, params, what), echo=False)
            offset += len(page)
            fresh = {_first(item, uid_tag): item for item in page if _first(item, uid_tag) not in found}
            found.update(fresh)
            if len(found) > MAX_QUERY_STUDIES:
                raise QueryTooBroad(f"{self.url} ({what})", f"more than {MAX_QUERY_STUDIES} results: narrow the query")
            if len(page) < QIDO_PAGE or not fresh:  # the last page (or an archive that ignores offset)
                return list(found.values())

    def _qido(self, path: str, params: list[tuple[str, str]], what: str) -> list[dict[str, Any]]:
        source = f"{self.url} ({what})"
        headers = {"Accept": "application/dicom+json"}
        with self.session.get(
            f"{self.url}/{path}", params=params, headers=headers, timeout=self.timeout, stream=True
        ) as response:
            response.raise_for_status()
            if response.status_code == 204:
                return []
            body = _read_bounded(response, source, MAX_HEADER_BYTES)
        if not body.strip():
            return []
        try:
            answer = json.loads(body)
        except ValueError:
            raise ArchiveResponseInvalid(source, "the answer is not valid JSON (truncated?)") from None
        if not isinstance(answer, list) or not all(isinstance(item, dict) for item in answer):
            raise ArchiveResponseInvalid(source, "the answer is not a list of DICOM JSON objects")
        return answer

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


def _first(item: Mapping[str, Any], tag: str) -> str:
    """The first value of ``tag`` in a DICOM JSON object, as text ("" when absent)."""
    values = (item.get(tag) or {}).get("Value") or [""]
    return str(values[0])


def _check_declared_length(response: Any, source: str, limit: int) -> None:
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ArchiveResponseInvalid(source, f"the answer declares {declared} bytes, over the limit of {limit}")


def _read_bounded(response: Any, source: str, limit: int) -> bytes:
    _check_declared_length(response, source, limit)
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(chunk_size=_CHUNK_BYTES):
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
