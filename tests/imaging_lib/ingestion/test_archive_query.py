"""Archive queries: checked before anything is asked, described without identifiers, answers checked against them."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from imaging_lib import sample_data
from imaging_lib.errors import NothingMatched
from imaging_lib.ingestion.archive_query import ArchiveQuery, find_studies, list_studies
from imaging_lib.interop.dicomweb import DicomwebArchive
from imaging_lib.store.objects import Store
from support.archive_series import planted_patient_id, reinstanced, series_answer, study_answer
from support.phi import PHI, find_phi
from support.scripted_http import Answer, ScriptedServer

FAST = {"attempts": 2, "backoff": 0.01, "timeout": (2.0, 2.0)}
SECRET = "archive-query-secret-0123456789"
PATIENT = planted_patient_id("query")


@pytest.fixture(autouse=True)
def no_archive_credentials(monkeypatch):
    for name in ("IMAGING_DICOMWEB_USER", "IMAGING_DICOMWEB_PASSWORD", "IMAGING_DICOMWEB_TOKEN"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def ct_files():
    return reinstanced([sample_data.pydicom_file("CT_small.dcm")], 3, patient_id=PATIENT, study_date="20240315")


def test_a_query_is_checked_and_named_without_its_identifiers():
    query = ArchiveQuery.from_mapping({"patient": PATIENT, "modality": "ct", "since": "2024-01-01"})
    assert query == ArchiveQuery(patient=PATIENT, modality="CT", since=dt.date(2024, 1, 1))
    assert query.describe() == "patient ID given, modality CT, since 2024-01-01"
    assert PATIENT not in repr(query) and PHI["PatientID"] not in str(query.describe())
    assert query.study_filters() == [{"PatientID": PATIENT, "ModalitiesInStudy": "CT", "StudyDate": "20240101-"}]
    two = ArchiveQuery.from_mapping({"study": ["1.2.3", "1.2.4"], "until": dt.date(2024, 2, 1)})
    assert [f["StudyInstanceUID"] for f in two.study_filters()] == ["1.2.3", "1.2.4"]
    assert two.study_filters()[0]["StudyDate"] == "-20240201" and "1.2.3" not in two.describe()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({}, "needs a patient ID or study UIDs"),
        ({"modality": "CT", "since": "2024-01-01"}, "needs a patient ID or study UIDs"),
        ({"patient": "MRN*"}, "without wildcards"),
        ({"patient": "x" * 65}, "at most 64"),
        ({"study": "1.2.3/../system"}, "must be a DICOM UID"),
        ({"patient": "P", "modality": "C T"}, "modality code"),
        ({"patient": "P", "since": "15/03/2024"}, "is not a date"),
        ({"patient": "P", "since": "2024-03-02", "until": "2024-03-01"}, "since is after until"),
        ({"patient": "P", "name": "Doe^John"}, "unknown query field"),
    ],
)
def test_bad_queries_are_refused_before_any_request_without_echoing_identifiers(query, message):
    with pytest.raises(ValueError, match=message) as caught:
        ArchiveQuery.from_mapping(query)
    assert "MRN" not in str(caught.value) and "Doe" not in str(caught.value)


def test_answers_that_do_not_match_the_query_are_dropped(ct_files):
    query = ArchiveQuery.from_mapping({"patient": PATIENT, "since": "2024-03-01", "until": "2024-03-31"})
    (answer,) = json.loads(study_answer(ct_files))
    assert query.matches(answer)
    assert not ArchiveQuery.from_mapping({"patient": "someone-else"}).matches(answer)
    assert not ArchiveQuery.from_mapping({"patient": PATIENT, "since": "2024-04-01"}).matches(answer)
    assert not ArchiveQuery.from_mapping({"study": "1.2.3"}).matches(answer)


def test_an_archive_answering_with_another_patients_study_finds_nothing(ct_files):
    other = reinstanced([sample_data.pydicom_file("CT_small.dcm")], 1, patient_id="SOMEONE-ELSE")
    with (
        ScriptedServer(Answer(200, study_answer(other))) as server,
        pytest.raises(NothingMatched, match=r"no study matches the query \(patient ID given\)") as caught,
    ):
        find_studies(DicomwebArchive(server.url, **FAST), ArchiveQuery(patient=PATIENT))
    assert PATIENT not in str(caught.value)
    assert "PatientID=" in server.received[0].path and "includefield=StudyDate" in server.received[0].path


def test_the_listing_shows_only_what_the_store_will_hold(tmp_path, ct_files):
    with ScriptedServer(Answer(200, study_answer(ct_files)), Answer(200, series_answer(ct_files))) as server:
        studies = find_studies(DicomwebArchive(server.url, **FAST), ArchiveQuery(patient=PATIENT, modality="CT"))
    assert "Modality=CT" in server.received[1].path
    (listing,) = list_studies(studies, SECRET, Store(tmp_path / "store"))
    original_uid = studies[0].study_uid
    assert listing.reference.startswith("2.25.") and listing.reference != original_uid
    assert listing.patient_pseudonym.startswith("ANON-")
    assert listing.study_date is not None and listing.study_date < "2024-03-15"  # shifted into the past
    assert (listing.modalities, listing.series, listing.instances, listing.ingested_series) == (("CT",), 1, 3, 0)
    shown = repr(listing).encode()
    assert find_phi(shown) == [] and original_uid.encode() not in shown and b"20240315" not in shown
    assert original_uid not in repr(studies) and PATIENT not in repr(studies)
