"""Reports run and stored on the sample studies: notebook, HTML without code, PDF; cohort counts; clean failures.

The store is filled the way a user fills it: the real sample DICOM studies are ingested
(de-identified) and run through :func:`imaging_lib.jobs.batch.process_study` with the demo
model, then reports run in real kernels, are exported by nbconvert and printed by Chromium.
"""

from __future__ import annotations

import base64
import io
import re
import subprocess
from html.parser import HTMLParser

import nbformat
import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from imaging_lib import reports
from imaging_lib.errors import ReportFailed
from imaging_lib.store import layout
from imaging_lib.store.objects import Store
from support.phi import find_phi, write_phi_copies

PNG_DATA_URI = 'src="data:image/png;base64,'
MISSING_STUDY = "2.25.404"

pytestmark = pytest.mark.slow


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def report_store(tmp_path_factory, brain_files) -> tuple[Store, list[str]]:
    """A local store with the sample studies (PHI planted in them) ingested, predicted and explained."""
    from imaging_lib import sample_data
    from imaging_lib.ingestion.batch import ingest
    from imaging_lib.jobs import process_study
    from imaging_lib.models import DEMO_MODEL_URI, load_model

    root = tmp_path_factory.mktemp("reports")
    sources = write_phi_copies([*brain_files, sample_data.pydicom_file("CT_small.dcm")], root / "with_phi")
    store = Store(str(root / "store"))
    summary = ingest(sources, store, secret="report-tests-secret-0001", progress=False)
    study_uids = sorted({entry["study_uid"] for entry in summary.ingested})
    assert len(study_uids) == 2, summary
    checksum = load_model(DEMO_MODEL_URI).checksum
    for study_uid in study_uids:
        process_study(study_uid, store.url, DEMO_MODEL_URI, {"num_samples": 100}, model_checksum=checksum)
    return store, study_uids


@pytest.fixture(scope="module")
def study_reports(report_store) -> dict[str, dict]:
    """One study report per sample study, made in process (each in its own kernel)."""
    store, study_uids = report_store
    return {uid: reports.run_report("study", {"study_uid": uid}, store) for uid in study_uids}


@pytest.fixture(scope="module")
def dask_client():
    """A real process cluster of one single-threaded worker."""
    from distributed import Client

    from imaging_lib.jobs import start_local_cluster

    cluster = start_local_cluster(n_workers=1, dashboard_address="127.0.0.1:0")
    client = Client(cluster, set_as_default=False)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(scope="module")
def original_identifiers(brain_files) -> set[str]:
    """Identifying values the real sample files carry (IDs, UIDs, names): none may reach a report."""
    import pydicom

    from imaging_lib import sample_data

    found: set[str] = set()
    for path in (brain_files[0], sample_data.pydicom_file("CT_small.dcm")):
        dataset = pydicom.dcmread(path, stop_before_pixels=True)
        for keyword in ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
            found.add(str(dataset.get(keyword) or ""))
    found.discard("")
    assert "123565" in found  # the brain series' patient ID
    return found


def _pdf_text(data: bytes) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages)


def _png_pixels(data: bytes) -> np.ndarray:
    import matplotlib.image

    return matplotlib.image.imread(io.BytesIO(data), format="png")


class _TableCells(HTMLParser):
    """Rows of every HTML table, as lists of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self.rows:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _summary_output(notebook: nbformat.NotebookNode) -> dict:
    """The machine-readable summary the cohort report displays in its cell tagged ``summary``."""
    for cell in notebook.cells:
        if "summary" in cell.metadata.get("tags", []):
            return next(out["data"]["application/json"] for out in cell.outputs if "data" in out)
    raise AssertionError("no cell tagged 'summary'")


# ---------------------------------------------------------------------------- study reports
def test_study_report_stores_notebook_html_and_pdf(report_store, study_reports):
    store, study_uids = report_store
    for uid in study_uids:
        summary = study_reports[uid]
        assert summary["keys"] == {fmt: layout.report_key(uid, "study_report", fmt) for fmt in ("ipynb", "html", "pdf")}
        assert all(store.exists(key) for key in summary["keys"].values())
        assert set(summary["timings"]) == {"kernel_start", "execution", "export"}
        assert all(seconds > 0 for seconds in summary["timings"].values())
        executed = nbformat.reads(store.read_bytes(summary["keys"]["ipynb"]).decode(), as_version=4)
        assert executed.metadata.papermill.parameters["study_uid"] == uid
        assert all(cell.execution_count for cell in executed.cells if cell.cell_type == "code")


def test_study_report_html_shows_prediction_and_embedded_images_without_code(report_store, study_reports):
    store, study_uids = report_store
    for uid in study_uids:
        result = store.read_json(layout.result_record_key(uid, _model_id(store, uid)))
        html = store.read_bytes(study_reports[uid]["keys"]["html"]).decode()
        assert f"Prediction: {result['label']}" in html
        assert f"{float(result['probability']):.3f}" in html
        assert result["model_checksum"] in html
        assert "Not a diagnostic device" in html
        assert "store.read_json" not in html and "import matplotlib" not in html  # no code cells
        assert "<script src=" not in html  # renders offline
        images = [_png_pixels(base64.b64decode(chunk.split('"', 1)[0])) for chunk in html.split(PNG_DATA_URI)[1:]]
        single_slice = len(result["slice_probabilities"]) == 1
        # montage and heat map, and a per-slice chart unless there is one slice (then the number, in words)
        assert len(images) >= (2 if single_slice else 3)
        assert all(image.std() > 0.01 for image in images)
        assert ("Single-slice study: probability" in html) == single_slice
    assert {
        len(store.read_json(layout.result_record_key(u, _model_id(store, u)))["slice_probabilities"])
        for u in study_uids
    } == {1, 20}


def _model_id(store: Store, study_uid: str) -> str:
    keys = store.list(f"{layout.RESULT_RECORDS}{study_uid}/")
    assert len(keys) == 1
    return keys[0].rsplit("/", 1)[1].removesuffix(".json")


def test_study_report_pdf_has_pages_that_are_not_blank(report_store, study_reports, tmp_path):
    store, study_uids = report_store
    uid = study_uids[0]
    pdf = store.read_bytes(study_reports[uid]["keys"]["pdf"])
    from pypdf import PdfReader

    assert len(PdfReader(io.BytesIO(pdf)).pages) >= 2
    text = _pdf_text(pdf)
    assert "Study report" in text and "Not a diagnostic device" in text
    (tmp_path / "report.pdf").write_bytes(pdf)
    subprocess.run(
        ["pdftoppm", "-r", "40", "-png", "-f", "2", "-l", "2", str(tmp_path / "report.pdf"), str(tmp_path / "page")],
        check=True,
    )
    page = _png_pixels(next(tmp_path.glob("page*.png")).read_bytes())[..., :3]
    ink = (page.mean(axis=2) < 0.9).mean()
    assert ink > 0.05, f"page 2 is nearly blank ({ink:.1%} ink)"


def test_reports_carry_no_phi(report_store, study_reports, original_identifiers):
    store, _ = report_store
    for summary in study_reports.values():
        html = store.read_bytes(summary["keys"]["html"]).decode()
        documents = {
            "html": re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html).encode(),  # text, not pixels
            "ipynb": store.read_bytes(summary["keys"]["ipynb"]),
            "pdf text": _pdf_text(store.read_bytes(summary["keys"]["pdf"])).encode(),
        }
        for name, data in documents.items():
            assert find_phi(data) == [], f"planted PHI in the {name} report"
            leaked = [value for value in original_identifiers if value.encode() in data]
            assert leaked == [], f"original identifiers in the {name} report: {leaked}"


# ---------------------------------------------------------------------------- cohort report
def test_cohort_report_counts_match_the_catalog(report_store, dask_client, capsys):
    from imaging_lib.cli import main
    from imaging_lib.store.catalog import Catalog

    store, study_uids = report_store
    code = main(["report", "--cohort", "--store", store.url, "--scheduler", dask_client.scheduler.address])
    assert code == 0, capsys.readouterr().err
    assert store.full_path(layout.report_key("cohort", "cohort_report", "pdf")) in capsys.readouterr().out

    catalog = Catalog(store)
    studies, results = catalog.studies(), catalog.results()
    executed = nbformat.reads(store.read_bytes(layout.report_key("cohort", "cohort_report", "ipynb")).decode(), 4)
    summary = _summary_output(executed)
    assert summary["studies"] == len(studies) == len(study_uids)
    assert summary["by_modality"] == studies.groupby("modality").size().to_dict()
    expected = {f"{m}/{l}": n for (m, l), n in results.groupby(["model_id", "label"]).size().items()}
    assert summary["by_prediction"] == expected

    html = store.read_bytes(layout.report_key("cohort", "cohort_report", "html")).decode()
    parser = _TableCells()
    parser.feed(html)
    for modality, count in summary["by_modality"].items():
        assert [modality, str(count)] in parser.rows
    assert "by_modality" not in html  # the machine-readable summary stays out of the HTML


# ---------------------------------------------------------------------------- failures
def test_missing_study_fails_in_the_job_and_writes_nothing(report_store, dask_client):
    store, study_uids = report_store
    job = reports.run_reports([study_uids[0], MISSING_STUDY], store, client=dask_client, formats=["html"]).wait(600)
    assert job.counts["done"] == 1 and job.counts["failed"] == 1
    assert job.errors[MISSING_STUDY]["error_type"] == "MissingRecord"
    assert MISSING_STUDY in job.errors[MISSING_STUDY]["error"]
    record = store.read_json(layout.job_record_key(job.job_id))
    assert record["kind"] == "report"
    assert [e["item"] for e in record["errors"]] == [MISSING_STUDY]
    assert store.list(f"reports/{MISSING_STUDY}/") == []
    assert set(job.results[study_uids[0]]["keys"]) == {"ipynb", "html"}


def test_failing_cell_leaves_no_half_written_report(report_store, tmp_path):
    store, study_uids = report_store
    template = tmp_path / "broken_report.ipynb"
    parameters = new_code_cell('study_uid = None\nstore_url = ""', metadata={"tags": ["parameters"]})
    notebook = new_notebook(
        cells=[parameters, new_code_cell("raise ValueError('figure failed')")],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    nbformat.write(notebook, template)
    with pytest.raises(ReportFailed, match="ValueError: figure failed"):
        reports.run_report(template, {"study_uid": study_uids[0]}, store)
    assert not any("broken_report" in key for key in store.list("reports/"))
