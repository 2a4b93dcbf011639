"""ExportButtons in real headless Chromium, served by Voilà: send to a real Orthanc, download the zip."""

from __future__ import annotations

import io
import zipfile

import pydicom
import pytest

from support.browser import chromium_context, collect_console
from support.phi import find_phi
from support.servers import voila_server, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LOAD_TIMEOUT_MS = 120_000

APP_CELL = """
import os
from imaging_lib.store.objects import Store
from widgets.export_buttons import ExportButtons

ExportButtons(Store(), os.environ["EXPORT_STUDY_UID"])
"""


def test_send_to_archive_and_download_from_the_page(results_store, orthanc, tmp_path):
    write_notebook(tmp_path / "export.ipynb", [APP_CELL])
    uid = results_store.uids["brain"]
    env = {
        "IMAGING_STORE": results_store.store.url,
        "EXPORT_STUDY_UID": uid,
        "IMAGING_DICOMWEB_URL": orthanc.dicomweb_url,
        "IMAGING_DICOMWEB_USER": orthanc.username,
        "IMAGING_DICOMWEB_PASSWORD": orthanc.password,
    }
    with voila_server(tmp_path / "export.ipynb", env=env) as server, chromium_context() as browser:
        page = browser.new_page()
        console = collect_console(page)
        page.goto(server.url_for("export.ipynb"))
        page.wait_for_selector(".imaging-send-to-archive", timeout=LOAD_TIMEOUT_MS)
        assert page.locator("input[type=text]").first.input_value() == orthanc.dicomweb_url
        page.click(".imaging-send-to-archive")
        sent = page.wait_for_selector(".imaging-export-status .sent", timeout=LOAD_TIMEOUT_MS)
        assert "Sent 1 pmap, 1 seg, 1 sr to http://127.0.0.1:" in sent.inner_text()
        assert orthanc.password not in page.content()
        with page.expect_download(timeout=LOAD_TIMEOUT_MS) as download:
            page.click(".imaging-download-button")
        assert download.value.suggested_filename == f"{uid}_dicom.zip"
        path = tmp_path / download.value.suggested_filename
        download.value.save_as(path)
        page.screenshot(path=str(tmp_path / "export.png"))
    with zipfile.ZipFile(path) as bundle:
        assert sorted(name.split("-")[0] for name in bundle.namelist()) == ["pmap", "seg", "sr"]
        for name in bundle.namelist():
            data = bundle.read(name)
            assert pydicom.dcmread(io.BytesIO(data)).StudyInstanceUID == uid and find_phi(data) == []
    assert not [line for line in console if line.startswith("pageerror")], console
