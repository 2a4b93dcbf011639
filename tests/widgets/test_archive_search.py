"""ArchiveSearch in the upload panel, driven against a real Orthanc: search, tick, ingest with live progress."""

from __future__ import annotations

import datetime as dt
import io

import pydicom
import pytest

from imaging_lib import sample_data
from imaging_lib.errors import PermissionDenied
from imaging_lib.store import layout
from imaging_lib.store.catalog import Catalog
from imaging_lib.store.objects import Store
from support.archive_series import planted_patient_id, reinstanced, upload
from support.phi import PHI, find_phi, find_phi_in_store
from widgets.upload_panel import UploadPanel

SECRET = "archive-search-secret-0123456789"
PATIENT = planted_patient_id("panel")


@pytest.fixture
def credentials(orthanc, monkeypatch):
    monkeypatch.setenv("IMAGING_DICOMWEB_USER", orthanc.username)
    monkeypatch.setenv("IMAGING_DICOMWEB_PASSWORD", orthanc.password)
    monkeypatch.delenv("IMAGING_DICOMWEB_TOKEN", raising=False)
    monkeypatch.setenv("IMAGING_DEID_SECRET", SECRET)


@pytest.fixture(scope="module")
def two_studies(orthanc):
    """A CT study from March 2024 and an MR study from 2019 of one patient, PHI planted."""
    ct = reinstanced([sample_data.pydicom_file("CT_small.dcm")], 6, patient_id=PATIENT, study_date="20240315")
    mr = reinstanced(sample_data.brain_series()[:4], 4, patient_id=PATIENT, study_date="20190101")
    upload(orthanc, ct + mr)
    return ct, mr


def _page_text(panel: UploadPanel) -> str:
    search = panel.archive_search
    texts = [search.status.value, panel.result.value, *(box.description for box in search.checkboxes)]
    return "\n".join(texts)


def test_the_panel_searches_lists_only_deidentified_facts_and_ingests_the_ticked_study(
    orthanc, credentials, two_studies, tmp_path
):
    ct, mr = two_studies
    store = Store(tmp_path / "store")
    panel = UploadPanel(store, analyse=False, archive=orthanc.dicomweb_url)
    search = panel.archive_search
    assert search is not None and search in panel.children
    search.patient.value = PATIENT
    listings = search.search()
    assert len(listings) == 2 and len(search.checkboxes) == 2 and search.ingest_button.disabled
    originals = {str(pydicom.dcmread(io.BytesIO(files[0])).StudyInstanceUID) for files in (ct, mr)}
    shown = _page_text(panel)
    assert find_phi(shown.encode()) == [] and PATIENT not in shown and PHI["PatientID"] not in shown
    assert not any(uid in shown for uid in originals) and "20240315" not in shown
    assert all(listing.reference.startswith("2.25.") for listing in listings)

    (ct_box,) = [box for box, listing in zip(search.checkboxes, listings, strict=True) if listing.modalities == ("CT",)]
    ct_box.value = True
    assert not search.ingest_button.disabled
    seen = []
    search.progress.observe(lambda change: seen.append(change["new"]), "value")
    summary = search.ingest_selected()
    assert len(summary.ingested) == 6 and summary.ok
    assert seen[-1] == search.progress.max == 6 and seen == sorted(seen) and len(seen) >= 6  # moved per instance
    assert panel.summary is summary and "Ingested <b>6</b>" in panel.result.value
    assert "6 instance(s) stored, 0 series failed" in search.status.value
    (study,) = Catalog(store).studies()["study_uid"]
    assert study == next(listing.reference for listing in listings if listing.modalities == ("CT",))
    assert len(store.list(layout.RETRIEVAL_RECORDS)) == 1 and find_phi_in_store(store) == {}

    again = search.search()  # the ingested study now says so
    assert sorted(listing.ingested_series for listing in again) == [0, 1]
    assert any("1 ingested before" in box.description for box in search.checkboxes)


def test_dates_and_modality_narrow_the_list_and_nothing_matched_is_said_without_identifiers(
    orthanc, credentials, two_studies, tmp_path
):
    panel = UploadPanel(Store(tmp_path / "store"), analyse=False, archive=orthanc.dicomweb_url)
    search = panel.archive_search
    search.patient.value = PATIENT
    search.since.value = dt.date(2024, 1, 1)
    (listing,) = search.search()
    assert listing.modalities == ("CT",) and listing.instances == 6
    search.since.value = None
    search.modality.value = "MR"
    (listing,) = search.search()
    assert listing.modalities == ("MR",)
    search.patient.value = planted_patient_id("nobody")
    assert search.search() == [] and search.checkboxes == []
    assert "NothingMatched" in search.status.value and "patient ID given" in search.status.value
    assert planted_patient_id("nobody") not in search.status.value
    search.patient.value = ""
    assert search.search() == [] and "needs a patient ID" in search.status.value


def test_a_stopped_archive_is_shown_as_unavailable(orthanc, credentials, tmp_path):
    panel = UploadPanel(Store(tmp_path / "store"), analyse=False, archive=orthanc.dicomweb_url)
    search = panel.archive_search
    search.archive.attempts, search.archive.backoff = 1, 0.01
    search.patient.value = PATIENT
    with orthanc.stopped():
        assert search.search() == []
    assert "ArchiveUnavailable" in search.status.value and orthanc.password not in search.status.value


def test_without_an_archive_there_is_no_search_and_a_bad_address_is_said(tmp_path, monkeypatch):
    monkeypatch.delenv("IMAGING_DICOMWEB_URL", raising=False)
    assert UploadPanel(Store(tmp_path / "a"), analyse=False).archive_search is None
    panel = UploadPanel(Store(tmp_path / "b"), analyse=False, archive="dicomweb+http://alice:pw@127.0.0.1:1/dicom-web")
    assert panel.archive_search is None
    (message,) = [child for child in panel.children if "archive-error" in str(getattr(child, "value", ""))]
    assert "Archive search unavailable" in message.value and "pw@" not in message.value


def test_a_viewer_sees_no_archive_search_and_a_forged_search_asks_the_archive_nothing(
    orthanc, credentials, two_studies, tmp_path, monkeypatch
):
    for name, value in {"IMAGING_ACCESS": "team", "IMAGING_USER": "vera", "IMAGING_USER_GROUPS": "viewer"}.items():
        monkeypatch.setenv(name, value)
    store = Store(tmp_path / "store")
    panel = UploadPanel(store, analyse=False, archive=orthanc.dicomweb_url)
    search = panel.archive_search
    assert search is not None and search.layout.display == "none"
    search.patient.value = PATIENT
    with pytest.raises(PermissionDenied, match="user vera: may not upload studies"):
        search.search()  # as if the hidden button's click were forged
    with pytest.raises(PermissionDenied):
        search.ingest_selected()
    assert search.matches.children == () and store.list("") == []
