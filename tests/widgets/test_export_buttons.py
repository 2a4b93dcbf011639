"""ExportButtons: send a study to a real Orthanc from the widget, download it as a zip of DICOM objects."""

from __future__ import annotations

import io
import zipfile

import pydicom
import pytest

from imaging_lib.errors import ArchiveUnauthorized, NothingToExport, PermissionDenied
from support.phi import find_phi
from widgets.export_buttons import DicomDownloadButton, ExportButtons

SECRET = "w1dget-secret"


def test_the_download_is_a_zip_of_the_studys_dicom_objects(results_store):
    button = DicomDownloadButton(results_store.store, results_store.uids["brain"])
    message, data = button.payload()
    assert message == {
        "type": "file",
        "filename": f"{results_store.uids['brain']}_dicom.zip",
        "mime": "application/zip",
    }
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        names = sorted(bundle.namelist())
        assert [name.split("-")[0] for name in names] == ["pmap", "seg", "sr"]
        for name in names:
            content = bundle.read(name)
            assert pydicom.dcmread(io.BytesIO(content)).StudyInstanceUID == results_store.uids["brain"]
            assert find_phi(content) == []


def test_a_study_without_results_says_so_instead_of_downloading(results_store):
    button = DicomDownloadButton(results_store.store, results_store.uids["mr"])
    with pytest.raises(NothingToExport, match="no saved mask"):
        button.payload()


def test_send_to_archive_reaches_orthanc_and_reports_what_was_sent(results_store, orthanc, monkeypatch):
    monkeypatch.setenv("IMAGING_DICOMWEB_URL", orthanc.dicomweb_url)
    monkeypatch.setenv("IMAGING_DICOMWEB_USER", orthanc.username)
    monkeypatch.setenv("IMAGING_DICOMWEB_PASSWORD", orthanc.password)
    buttons = ExportButtons(results_store.store, results_store.uids["ct"])
    assert buttons.archive.value == orthanc.dicomweb_url
    buttons.send().join(60)
    assert buttons.error is None and not buttons.send_button.disabled
    assert "Sent 1 pmap, 1 seg, 1 sr to http://127.0.0.1:" in buttons.status.value
    held = {entry["sop_uid"] for entry in buttons.summary.objects}
    stored = {
        orthanc.get(f"instances/{i}/simplified-tags").json()["SOPInstanceUID"] for i in orthanc.get("instances").json()
    }
    assert held <= stored


def test_a_refused_send_shows_the_typed_error_without_the_secret(results_store, orthanc, monkeypatch):
    monkeypatch.setenv("IMAGING_DICOMWEB_USER", orthanc.username)
    monkeypatch.setenv("IMAGING_DICOMWEB_PASSWORD", SECRET)
    buttons = ExportButtons(results_store.store, results_store.uids["ct"], archive_url=orthanc.dicomweb_url)
    buttons.send().join(60)
    assert isinstance(buttons.error, ArchiveUnauthorized)
    assert "Not sent: ArchiveUnauthorized" in buttons.status.value and SECRET not in buttons.status.value
    buttons.archive.value = orthanc.dicomweb_url.replace("://", f"://{orthanc.username}:{SECRET}@")
    assert buttons.archive.value == "" and "never go in the address" in buttons.status.value  # not kept in state
    buttons.send().join(60)
    assert isinstance(buttons.error, ValueError) and SECRET not in buttons.status.value


def test_a_reviewer_sees_no_export_and_forged_clicks_export_nothing(results_store, orthanc, monkeypatch):
    for name, value in {"IMAGING_ACCESS": "team", "IMAGING_USER": "rita", "IMAGING_USER_GROUPS": "reviewer"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("IMAGING_DICOMWEB_USER", orthanc.username)
    monkeypatch.setenv("IMAGING_DICOMWEB_PASSWORD", orthanc.password)
    before, exports = orthanc.get("instances").json(), results_store.store.list("records/exports/")
    buttons = ExportButtons(results_store.store, results_store.uids["ct"], archive_url=orthanc.dicomweb_url)
    assert buttons.send_button.layout.display == "none" and buttons.download.layout.display == "none"
    buttons.send().join(60)  # as if the hidden button's click were forged
    assert type(buttons.error).__name__ == "PermissionDenied" and "may not export results" in buttons.status.value
    assert orthanc.get("instances").json() == before
    assert results_store.store.list("records/exports/") == exports
    with pytest.raises(PermissionDenied, match="that needs the role researcher or admin"):
        buttons.download.payload()
