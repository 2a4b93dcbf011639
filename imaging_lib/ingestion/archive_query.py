"""Find what to ingest in a DICOMweb archive: a checked query, QIDO-RS studies then series, a PHI-free listing.

* :class:`ArchiveQuery` is what a researcher asks for: a patient ID or study UIDs (one of
  them is required: nobody ingests a whole archive by accident), a modality and a date
  range. Values are checked (no wildcards in a patient ID, UIDs that are UIDs, ISO
  dates) and :meth:`ArchiveQuery.describe` names the query without its identifiers.
* :func:`find_studies` asks the archive (QIDO-RS) for the studies, then for each study's
  series of the modality, and keeps only answers that match what was asked (an archive
  answering with another patient's study does not get it ingested).
* :func:`list_studies` is what a page may show about them: the QIDO-RS answer
  de-identified exactly as ingest will de-identify the instances
  (:func:`~imaging_lib.deid.deidentify_attributes`): the de-identified Study Instance UID,
  the patient pseudonym, the shifted study date, modalities and counts. Never a name,
  an ID, a description or an original UID.
* :func:`series_digest` is the keyed hash of a series' original Study and Series UIDs
  under which ingest records that it retrieved the series (resume).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..deid import Pseudonymizer, check_secret, deidentify_attributes
from ..errors import ArchiveResponseInvalid, NothingMatched, QueryTooBroad
from ..limits import MAX_QUERY_STUDIES
from ..store import layout

if TYPE_CHECKING:
    from ..interop.dicomweb import DicomwebArchive
    from ..store.objects import Store

__all__ = [
    "QUERY_FIELDS",
    "ArchiveQuery",
    "ArchiveSeries",
    "ArchiveStudy",
    "StudyListing",
    "find_studies",
    "list_studies",
    "selection_query",
    "series_digest",
]

QUERY_FIELDS = ("patient", "study", "modality", "since", "until")
"""The keys an archive query may have."""

STUDY_FIELDS = (
    "StudyInstanceUID",
    "StudyDate",
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "ModalitiesInStudy",
)
SERIES_FIELDS = ("SeriesInstanceUID", "Modality", "NumberOfSeriesRelatedInstances")

_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
_MODALITY = re.compile(r"[A-Z0-9_]{1,16}")
_WILDCARDS = frozenset("*?\\")
_TAG = {
    "StudyInstanceUID": "0020000D",
    "SeriesInstanceUID": "0020000E",
    "StudyDate": "00080020",
    "PatientID": "00100020",
    "Modality": "00080060",
    "NumberOfSeriesRelatedInstances": "00201209",
}


# ---------------------------------------------------------------------------- the query
def _date(value: Any, name: str) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    for form in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return dt.datetime.strptime(text, form).date()
        except ValueError:
            continue
    raise ValueError(f"query {name}: {text[:20]!r} is not a date (YYYY-MM-DD)")


def _study_uids(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    uids = (value,) if isinstance(value, str) else tuple(value)
    for uid in uids:
        if not isinstance(uid, str) or len(uid) > 64 or not _UID.fullmatch(uid):
            raise ValueError("query study: each study must be a DICOM UID (digits and dots, at most 64 characters)")
    if len(uids) > MAX_QUERY_STUDIES:
        raise ValueError(f"query study: at most {MAX_QUERY_STUDIES} studies at once")
    return tuple(dict.fromkeys(uids))


def _patient(value: Any) -> str:
    if value is None:
        return ""
    text = str(value).strip()
    if len(text) > 64 or not text.isprintable() or _WILDCARDS & set(text):
        raise ValueError("query patient: a patient ID of at most 64 printable characters, without wildcards (* ? \\)")
    return text


@dataclass(frozen=True, repr=False)
class ArchiveQuery:
    """A checked archive query. Its ``repr`` and :meth:`describe` never show the patient ID or UIDs.

    Attributes
    ----------
    patient : str
        A Patient ID, matched exactly ("" for any patient of the studies given).
    studies : tuple of str
        Study Instance UIDs (empty for every study of the patient).
    modality : str
        Keep only series of this modality ("" for all), e.g. ``"CT"``.
    since, until : datetime.date or None
        Study dates, inclusive.
    """

    patient: str = ""
    studies: tuple[str, ...] = ()
    modality: str = ""
    since: dt.date | None = None
    until: dt.date | None = None

    @classmethod
    def from_mapping(cls, query: Mapping[str, Any]) -> ArchiveQuery:
        """Check ``{"patient": ..., "study": ..., "modality": ..., "since": ..., "until": ...}``.

        Raises
        ------
        ValueError
            Unknown keys, bad values, ``since`` after ``until``, or neither a patient nor a
            study (the message never repeats an identifier).
        """
        unknown = sorted(set(query) - set(QUERY_FIELDS))
        if unknown:
            raise ValueError(f"unknown query field(s) {', '.join(unknown)}: use {', '.join(QUERY_FIELDS)}")
        modality = str(query.get("modality") or "").strip().upper()
        if modality and not _MODALITY.fullmatch(modality):
            raise ValueError("query modality: a DICOM modality code such as CT or MR")
        result = cls(
            patient=_patient(query.get("patient")),
            studies=_study_uids(query.get("study")),
            modality=modality,
            since=_date(query.get("since"), "since"),
            until=_date(query.get("until"), "until"),
        )
        if not result.patient and not result.studies:
            raise ValueError("an archive query needs a patient ID or study UIDs (a whole archive is never ingested)")
        if result.since and result.until and result.since > result.until:
            raise ValueError("query since is after until")
        return result

    def __repr__(self) -> str:
        return f"ArchiveQuery({self.describe()})"

    def describe(self) -> str:
        """The query in words, without its identifiers: ``patient ID given, modality CT, since 2024-01-01``."""
        words = ["patient ID given"] if self.patient else []
        if self.studies:
            words.append(f"{len(self.studies)} study UID{'s' if len(self.studies) > 1 else ''} given")
        if self.modality:
            words.append(f"modality {self.modality}")
        if self.since:
            words.append(f"since {self.since.isoformat()}")
        if self.until:
            words.append(f"until {self.until.isoformat()}")
        return ", ".join(words)

    def study_filters(self) -> list[dict[str, str]]:
        """QIDO-RS matching keys of the study searches (one search per study UID given)."""
        filters = {"PatientID": self.patient} if self.patient else {}
        if self.modality:
            filters["ModalitiesInStudy"] = self.modality
        if self.since or self.until:
            low, high = (d.strftime("%Y%m%d") if d else "" for d in (self.since, self.until))
            filters["StudyDate"] = f"{low}-{high}"
        return [{**filters, "StudyInstanceUID": uid} for uid in self.studies] or [filters]

    def matches(self, answer: Mapping[str, Any]) -> bool:
        """Whether a QIDO-RS study answer is what was asked for (the archive is not trusted to filter)."""
        if self.patient and _first(answer, "PatientID") != self.patient:
            return False
        if self.studies and _first(answer, "StudyInstanceUID") not in self.studies:
            return False
        date = _first(answer, "StudyDate")
        if (self.since or self.until) and len(date) == 8 and date.isdigit():
            low = self.since.strftime("%Y%m%d") if self.since else "00000000"
            high = self.until.strftime("%Y%m%d") if self.until else "99999999"
            return low <= date <= high
        return True


# ---------------------------------------------------------------------------- what the archive holds
@dataclass(frozen=True, repr=False)
class ArchiveSeries:
    """One series to retrieve: its original UIDs (never shown), modality and instance count."""

    study_uid: str
    series_uid: str
    modality: str
    instances: int | None

    def __repr__(self) -> str:
        return f"ArchiveSeries(<uids hidden>, {self.modality or '?'}, {self.instances} instance(s))"


@dataclass(frozen=True, repr=False)
class ArchiveStudy:
    """One study a query found: its QIDO-RS answer (PHI: never shown) and its series to retrieve."""

    study_uid: str
    answer: Mapping[str, Any]
    series: tuple[ArchiveSeries, ...]

    def __repr__(self) -> str:
        return f"ArchiveStudy(<uid hidden>, {len(self.series)} series)"


def _first(item: Mapping[str, Any], keyword: str) -> str:
    values = (item.get(_TAG[keyword]) or {}).get("Value") or [""]
    return str(values[0]).strip()


def _count(item: Mapping[str, Any], keyword: str) -> int | None:
    try:
        value = int(_first(item, keyword))
    except ValueError:
        return None
    return value if value >= 0 else None


def _answer_uid(item: Mapping[str, Any], keyword: str, source: str) -> str:
    uid = _first(item, keyword)
    if len(uid) > 64 or not _UID.fullmatch(uid):
        raise ArchiveResponseInvalid(source, f"a QIDO-RS answer holds no valid {keyword}")
    return uid


def find_studies(archive: DicomwebArchive, query: ArchiveQuery) -> list[ArchiveStudy]:
    """The studies and series an archive holds for ``query`` (QIDO-RS), checked against it.

    Parameters
    ----------
    archive : DicomwebArchive
    query : ArchiveQuery

    Returns
    -------
    list of ArchiveStudy
        Each with at least one series (of the modality, when one is asked for).

    Raises
    ------
    NothingMatched
        If no study (or no series of the modality) matches.
    QueryTooBroad
        If more than :data:`~imaging_lib.limits.MAX_QUERY_STUDIES` studies match.
    ArchiveError
        If the archive cannot be asked (see :mod:`imaging_lib.interop.dicomweb`).
    """
    answers: dict[str, Mapping[str, Any]] = {}
    for filters in query.study_filters():
        for item in archive.search_studies(filters, STUDY_FIELDS):
            if query.matches(item):
                answers.setdefault(_answer_uid(item, "StudyInstanceUID", archive.url), item)
        if len(answers) > MAX_QUERY_STUDIES:
            raise QueryTooBroad(archive.url, f"more than {MAX_QUERY_STUDIES} studies match: narrow the query")
    if not answers:
        raise NothingMatched(archive.url, f"no study matches the query ({query.describe()})")
    series_filters = {"Modality": query.modality} if query.modality else {}
    studies = []
    for study_uid, answer in answers.items():
        found = [
            ArchiveSeries(
                study_uid,
                _answer_uid(item, "SeriesInstanceUID", archive.url),
                _first(item, "Modality"),
                _count(item, "NumberOfSeriesRelatedInstances"),
            )
            for item in archive.search_series(study_uid, series_filters, SERIES_FIELDS)
            if not query.modality or _first(item, "Modality") == query.modality
        ]
        if found:
            studies.append(ArchiveStudy(study_uid, answer, tuple(found)))
    if not studies:
        raise NothingMatched(
            archive.url, f"{len(answers)} stud(ies) match the query ({query.describe()}) but hold no such series"
        )
    return studies


# ---------------------------------------------------------------------------- resume and listing
def series_digest(keys: Pseudonymizer, series: ArchiveSeries) -> str:
    """The keyed hash (HMAC-SHA256, hex) of a series' original Study and Series UIDs.

    Ingest records a retrieved series under it (:func:`imaging_lib.store.layout.retrieval_record_key`),
    so a later ingest recognises the series without retrieving it, and the store never
    holds the original UIDs.
    """
    return keys.digest("archive-series", f"{series.study_uid}\\{series.series_uid}").hex()


@dataclass(frozen=True)
class StudyListing:
    """What a page may show about a study an archive query found: only what the store will hold.

    Attributes
    ----------
    reference : str
        The de-identified Study Instance UID the study will have in the store.
    patient_pseudonym : str
        ``ANON-...``, as in the store.
    study_date : str or None
        The de-identified (shifted) study date, ISO; intervals between a patient's
        studies are kept, the calendar date is not.
    modalities : tuple of str
        Modalities of the series that would be retrieved.
    series, instances : int
        How many series and instances (as the archive counts them) would be retrieved.
    ingested_series : int
        How many of those series the store already holds (an ingest skips them).
    """

    reference: str
    patient_pseudonym: str
    study_date: str | None
    modalities: tuple[str, ...]
    series: int
    instances: int
    ingested_series: int


def _iso(value: str) -> str | None:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else None


def list_studies(studies: Iterable[ArchiveStudy], secret: bytes | str, store: Store) -> list[StudyListing]:
    """De-identify what :func:`find_studies` found into what a dashboard may show.

    Parameters
    ----------
    studies : iterable of ArchiveStudy
    secret : bytes or str
        The de-identification key of ``store`` (the same pseudonyms and shifts as ingest).
    store : Store
        Where retrieval records say which series were ingested before.

    Returns
    -------
    list of StudyListing
        In the order of ``studies``.

    Raises
    ------
    ArchiveResponseInvalid
        If a study's answer is not DICOM JSON.
    """
    from pydicom import Dataset

    keys = Pseudonymizer(check_secret(secret))
    listings = []
    for study in studies:
        try:
            clean = deidentify_attributes(Dataset.from_json(dict(study.answer)), keys.secret)
        except (ValueError, TypeError, KeyError, AttributeError):
            raise ArchiveResponseInvalid("<QIDO-RS answer>", "a study's answer is not DICOM JSON") from None
        done = sum(store.exists(layout.retrieval_record_key(series_digest(keys, series))) for series in study.series)
        listings.append(
            StudyListing(
                reference=str(clean.get("StudyInstanceUID", "")),
                patient_pseudonym=str(clean.get("PatientID", "")),
                study_date=_iso(str(clean.get("StudyDate", "") or "")),
                modalities=tuple(sorted({s.modality for s in study.series if s.modality})),
                series=len(study.series),
                instances=sum(s.instances or 0 for s in study.series),
                ingested_series=done,
            )
        )
    return listings


def selection_query(studies: Sequence[ArchiveStudy], modality: str = "") -> dict[str, Any]:
    """The query that ingests exactly ``studies`` (by their original UIDs, kept in the kernel)."""
    return {"study": [study.study_uid for study in studies], "modality": modality}
