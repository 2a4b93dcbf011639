"""The upload dashboard's archive search in real headless Chromium, served by real Voilà, against a real Orthanc.

The Voilà kernel gets the archive's address and credentials from its environment
(``IMAGING_DICOMWEB_URL``, ``IMAGING_DICOMWEB_USER``/``_PASSWORD``), as a deployment sets
them. The user types a patient ID, searches, ticks the study and ingests it; the page
shows the progress bar filled and the summary, and neither the page nor anything the
kernel sent to the browser holds the planted PHI, an original UID or the password.
"""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest

from imaging_lib import sample_data
from imaging_lib.dashboard.server import apps_dir
from imaging_lib.store.catalog import Catalog
from imaging_lib.store.objects import Store
from support.archive_series import planted_patient_id, reinstanced, upload
from support.browser import chromium_context, collect_console, screenshot_pixels
from support.phi import find_phi, find_phi_in_store
from support.servers import voila_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LOAD_MS = 120_000
PATIENT = planted_patient_id("browser")


def _saturated_fraction(pixels: np.ndarray) -> float:
    """Fraction of clearly coloured pixels (a filled progress bar; the form around it is grey and white)."""
    rgb = pixels[..., :3].astype(np.int32)
    return float((rgb.max(axis=-1) - rgb.min(axis=-1) >= 60).mean())


def test_a_study_found_in_the_archive_is_ticked_ingested_and_followed_live(orthanc, tmp_path):
    files = reinstanced([sample_data.pydicom_file("CT_small.dcm")], 8, patient_id=PATIENT, study_date="20240315")
    upload(orthanc, files)
    original_uid = str(pydicom.dcmread(io.BytesIO(files[0])).StudyInstanceUID)
    store = Store(tmp_path / "store")
    env = {
        "IMAGING_STORE": store.url,
        "IMAGING_DICOMWEB_URL": orthanc.dicomweb_url,
        "IMAGING_DICOMWEB_USER": orthanc.username,
        "IMAGING_DICOMWEB_PASSWORD": orthanc.password,
    }
    received: list[bytes] = []
    with (
        voila_server(apps_dir(), serve_folder=True, env=env) as server,
        chromium_context(timeout_ms=LOAD_MS) as browser,
    ):
        page = browser.new_page()
        console = collect_console(page)
        page.on(
            "websocket",
            lambda socket: socket.on(
                "framereceived", lambda frame: received.append(frame if isinstance(frame, bytes) else frame.encode())
            ),
        )
        try:
            page.goto(server.url_for("upload.ipynb"))
            page.wait_for_selector(".archive-search", timeout=LOAD_MS)
            page.uncheck("text=Analyse the uploaded studies")
            page.fill(".archive-patient input", PATIENT)
            page.click(".archive-search-button")
            page.wait_for_selector(".archive-found", timeout=LOAD_MS)
            boxes = page.locator(".archive-matches input[type=checkbox]")
            assert boxes.count() == 1
            listing = page.locator(".archive-matches").inner_text()
            assert "ANON-" in listing and "8 instances" in listing and original_uid not in listing
            boxes.first.check()
            page.click(".archive-ingest-button:not([disabled])")
            page.wait_for_selector(".archive-done", timeout=LOAD_MS)
            assert "Ingested 8 file(s)" in page.locator(".upload-counts").inner_text()
            bar = screenshot_pixels(page.locator(".archive-progress .progress-bar"))
            assert _saturated_fraction(bar) > 0.8  # the bar is filled: all 8 instances arrived
            assert "8/8" in page.locator(".archive-progress").inner_text()
            content = page.content()
        finally:
            print("\n".join(console[-40:]))  # shown when the test failed
            page.close()
    # the patient ID the user typed goes back and forth with its field: anything else of the PHI would be a leak
    everything = (content.encode() + b"".join(received)).replace(PATIENT.encode(), b"")
    assert len(received) > 20 and find_phi(everything) == []
    assert original_uid.encode() not in everything and orthanc.password.encode() not in everything
    (study,) = Catalog(store).studies()["study_uid"]
    assert study.encode() in content.encode() and find_phi_in_store(store) == {}
