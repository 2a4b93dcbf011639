"""UploadPanel: dropped files are de-identified, stored, summarised and analysed."""

from __future__ import annotations

import io
import zipfile

from imaging_lib.ingestion.batch import IngestSummary, ingest
from imaging_lib.limits import UPLOAD_LIMIT_BYTES
from imaging_lib.store.catalog import Catalog
from imaging_lib.store.objects import Store
from support.demo_store import TEST_PARAMS
from support.phi import find_phi, find_phi_in_store, write_phi_copies
from widgets.file_drop import CHUNK_BYTES, FileDrop
from widgets.upload_panel import UploadPanel, limit_text, summary_html


def _uploads(paths, prefix: str = "") -> list[tuple[str, bytes]]:
    return [(prefix + path.name, path.read_bytes()) for path in paths]


def test_the_page_states_a_limit_the_server_accepts():
    assert "1 GiB" in limit_text()
    assert CHUNK_BYTES < 10 << 20 < UPLOAD_LIMIT_BYTES  # chunks fit tornado's stock websocket limit
    assert FileDrop().max_bytes == 1 << 30


def test_summary_lists_quarantined_files_with_the_reason_and_escapes_names():
    summary = IngestSummary(
        ingested=[{"source": "a.dcm", "kind": "dicom", "study_uid": "2.25.1"}] * 3,
        quarantined=[{"source": "<b>bad</b>.dcm", "error": "UnreadableImage", "reason": "not DICOM"}],
    )
    html = summary_html(summary)
    assert "Ingested <b>3</b>" in html and "2.25.1" in html and "a.dcm" not in html
    assert "&lt;b&gt;bad&lt;/b&gt;.dcm" in html and "UnreadableImage" in html and "not DICOM" in html


def test_a_zip_with_hidden_members_and_stored_files_is_summarised(tmp_path, brain_files):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(brain_files[0], "scan/a.dcm")
        bundle.writestr("scan/.DS_Store", b"junk")
    store = Store(tmp_path / "store")
    ingest(("first.zip", archive.getvalue()), store, progress=False)
    summary = ingest(("again.zip", archive.getvalue()), store, progress=False)
    html = summary_html(summary)
    assert "already in the store" in html and "hidden file" in html and ">-</td>" in html


def test_a_drop_over_the_limit_is_refused_before_ingest():
    drop = FileDrop(max_bytes=10)
    received = []
    drop.on_files(received.append)
    drop.receive([("big.dcm", b"x" * 11)])
    assert received == [] and "Refused" in drop.status
    drop.receive([("small.dcm", b"x" * 10)])
    assert received == [[("small.dcm", b"x" * 10)]]


def test_an_upload_of_the_brain_series_is_stored_and_analysed(tmp_path, brain_files, local_dask_client):
    store = Store(tmp_path / "store")
    panel = UploadPanel(store, client=local_dask_client, params=TEST_PARAMS)
    panel.drop.receive([*_uploads(brain_files, "brain/"), ("notes.txt", b"not an image")])
    summary = panel.summary
    assert len(summary.ingested) == 20 and len(summary.quarantined) == 1
    assert "notes.txt" in panel.result.value and "quarantined <b>1</b>" in panel.result.value
    job = panel.job.wait(180)
    assert job.counts["done"] == 1
    results = Catalog(store).results()
    assert list(results["study_uid"]) == summary.studies
    panel.drop.receive(_uploads(brain_files))  # the same files again: nothing new
    assert len(panel.summary.skipped) == 20 and not panel.summary.ingested


def test_a_zipped_folder_is_ingested(tmp_path, brain_files):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in brain_files:
            archive.write(path, f"series/{path.name}")
    store = Store(tmp_path / "store")
    panel = UploadPanel(store, analyse=False)
    panel.drop.receive([("series.zip", buffer.getvalue())])
    assert len(panel.summary.ingested) == 20 and panel.job is None
    assert len(Catalog(store).studies()) == 1


def test_no_phi_reaches_the_page_or_the_store(tmp_path, brain_files):
    copies = write_phi_copies(brain_files[:4], tmp_path / "phi")
    assert find_phi(copies[0].read_bytes())  # the copies do carry the PHI
    store = Store(tmp_path / "store")
    panel = UploadPanel(store, analyse=False)
    panel.drop.receive(_uploads(copies))
    assert len(panel.summary.ingested) == 4
    assert find_phi(panel.result.value.encode()) == []
    assert find_phi_in_store(store) == {}
