"""The three dashboards and the landing page in real headless Chromium, served by real Voilà.

Two Voilà servers run the dashboard notebooks with the command line ``imaging-lab dashboard`` uses
(token included), their kernels on the session's real Dask LocalCluster:

* on the session's demo store (``make demo``'s four sample studies, predicted and reported):
  the token is asked for, the landing page links the dashboards, the study browser lists
  the sample studies and renders the brain MR with its LIME heat map (checked in pixels);
* on an empty store: the real brain series dropped on the upload page ends in the catalog,
  predicted; DICOM files carrying known PHI are uploaded and no dashboard page shows any
  of it; the job monitor's button starts a batch and the page follows it to the end.

Each dashboard's screenshot is saved to ``docs/screenshots/<name>.png`` for the README.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from imaging_lib.dashboard.server import apps_dir
from imaging_lib.ingestion.batch import ingest
from imaging_lib.sample_data import pydicom_file
from imaging_lib.store.catalog import Catalog
from imaging_lib.store.labels import latest_label
from imaging_lib.store.objects import Store
from support.browser import assert_real_image, chromium_context, collect_console, screenshot_pixels
from support.phi import find_phi, find_phi_in_store, write_phi_copies
from support.servers import voila_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCREENSHOTS = Path(__file__).resolve().parents[3] / "docs" / "screenshots"
LOAD_MS = 120_000
JOB_MS = 300_000
ROWS = ".imaging-record-table tbody tr"
VIEWER = ".imaging-papaya"

# Drops the files of the page's hidden test input on the drop zone, as a drag from the desktop does.
DROP_FILES = """() => {
  const input = document.querySelector("#test-drop-source");
  const transfer = new DataTransfer();
  for (const file of input.files) transfer.items.add(file);
  const zone = document.querySelector(".imaging-drop-zone");
  zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: transfer, bubbles: true, cancelable: true}));
  zone.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
}"""


def heat_fraction(pixels: np.ndarray) -> float:
    """Fraction of pixels coloured by the red-to-yellow heat map (a grey scan has R == B)."""
    rgb = pixels[..., :3].astype(np.int32)
    return float(((rgb[..., 0] >= 150) & (rgb[..., 0] - rgb[..., 2] >= 80)).mean())


# Scrolls everything back to the top and returns the bottom of the page's last output in CSS
# pixels (Voilà scrolls inside its own element, so a "full page" screenshot stops at the window).
CONTENT_BOTTOM = """() => {
  for (const element of document.querySelectorAll("*")) if (element.scrollTop) element.scrollTop = 0;
  const outputs = document.querySelectorAll(".jp-OutputArea-output, .jp-MarkdownOutput");
  return Math.max(...Array.from(outputs).map((element) => element.getBoundingClientRect().bottom));
}"""


def save_screenshot(page, name: str) -> np.ndarray:
    """Save the page, cropped to its content, as ``docs/screenshots/<name>.png``; return its pixels."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    width = page.viewport_size["width"]
    height = int(page.evaluate(CONTENT_BOTTOM)) + 24
    page.set_viewport_size({"width": width, "height": max(height, 300)})
    page.wait_for_timeout(500)  # let the viewer redraw at the new size
    pixels = screenshot_pixels(page)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), animations="disabled")
    return pixels


def open_dashboard(page, server, name: str, ready: str = ROWS) -> None:
    page.goto(server.url_for(f"{name}.ipynb"))
    page.wait_for_selector(ready, timeout=LOAD_MS)


def drop_files(page, paths: list[Path]) -> None:
    """Drop ``paths`` on the upload page's drop zone."""
    page.evaluate("""() => {
      const input = document.createElement("input");
      input.type = "file"; input.multiple = true; input.id = "test-drop-source"; input.style.display = "none";
      document.body.append(input);
    }""")
    page.set_input_files("#test-drop-source", [str(path) for path in paths])
    page.evaluate(DROP_FILES)


def table_column(page, column: str) -> list[str]:
    return page.locator(f"{ROWS} td[data-column={column}]").all_inner_texts()


@pytest.fixture(scope="module")
def browser():
    with chromium_context(viewport=(1280, 900), timeout_ms=LOAD_MS) as context:
        yield context


@pytest.fixture
def page(browser):
    page = browser.new_page()
    console = collect_console(page)
    yield page
    print("\n".join(console[-40:]))  # shown when the test failed
    page.close()


def _serve(store: Store, client) -> object:
    env = {"IMAGING_STORE": store.url, "IMAGING_DASK_SCHEDULER": client.scheduler.address}
    return voila_server(apps_dir(), serve_folder=True, env=env)


@pytest.fixture(scope="module")
def demo_voila(demo_store, local_dask_client):
    with _serve(demo_store, local_dask_client) as server:
        yield server


@pytest.fixture(scope="module")
def upload_app(tmp_path_factory, local_dask_client):
    store = Store(tmp_path_factory.mktemp("upload") / "store")
    with _serve(store, local_dask_client) as server:
        yield server, store


def test_pages_ask_for_the_token_and_the_landing_page_links_the_dashboards(demo_voila, page):
    page.goto(f"{demo_voila.base_url}/voila/render/studies.ipynb")
    assert "/login" in page.url and page.locator(ROWS).count() == 0
    page.goto(demo_voila.url_for("index.ipynb"))
    page.wait_for_selector("a[href$='studies.ipynb']", timeout=LOAD_MS)
    for name in ("studies", "jobs", "upload"):
        assert page.locator(f"a[href$='{name}.ipynb']").count() == 1
    save_screenshot(page, "index")


def test_the_job_monitor_lists_the_demo_jobs(demo_voila, demo_store, page):
    open_dashboard(page, demo_voila, "jobs")
    jobs = Catalog(demo_store).jobs()
    assert sorted(table_column(page, "job_id")) == sorted(jobs["job_id"])
    assert set(table_column(page, "status")) == {"finished"} and set(table_column(page, "progress")) == {"7 / 7"}
    assert page.locator("button:text('Analyse 0 studies without a result')").is_disabled()


def test_study_browser_shows_the_sample_studies_and_the_heat_map(demo_voila, demo_store, page):
    catalog = Catalog(demo_store)
    studies, results = catalog.studies(), catalog.results()
    open_dashboard(page, demo_voila, "studies")
    assert page.locator(ROWS).count() == len(studies) == 7
    assert sorted(table_column(page, "modality")) == sorted(m or "" for m in studies["modality"])
    assert set(table_column(page, "prediction")) == set(results["label"])
    assert set(table_column(page, "job_status")) == {"done"}

    # the brain series with the demo's synthetic lesion: heat map, and its known truth as the label mask
    brains = studies.loc[studies["shape"].map(lambda shape: tuple(shape) == (256, 256, 20))]
    brain = brains[brains["study_label"] == "lesion"].iloc[0]
    result = results[results["study_uid"] == brain["study_uid"]].iloc[0]
    saved_masks = catalog.segmentations()
    overlays = 1 + (int((saved_masks["study_uid"] == brain["study_uid"]).sum()) if len(saved_masks) else 0)
    overlays += 1 if (latest_label(demo_store, brain["study_uid"]) or {}).get("mask") else 0
    page.click(f"{ROWS}[data-key='{brain['study_uid']}']")
    page.wait_for_selector(f"{VIEWER}[data-status=ready][data-overlays='{overlays}']", timeout=LOAD_MS)
    assert page.get_attribute(VIEWER, "data-voxel").split(",")[2] == str(result["most_suspicious_slice"])
    assert page.locator(".study-label").inner_text() == result["label"]
    canvas = page.locator(f"{VIEWER} canvas").first
    pixels = screenshot_pixels(canvas)
    assert_real_image(pixels)
    assert heat_fraction(pixels) > 0.003, "no heat map colours on the viewer"  # the blue label mask lies on top
    assert page.locator("text=Report study_report.html").count() == 1
    shot = save_screenshot(page, "studies")
    assert heat_fraction(shot) > 0.002


def test_an_upload_of_the_brain_series_ends_in_the_catalog(upload_app, brain_files, page):
    server, store = upload_app
    open_dashboard(page, server, "upload", ready=".imaging-drop-zone")
    drop_files(page, brain_files)
    page.wait_for_selector(".upload-counts", timeout=LOAD_MS)
    assert "Ingested 20 file(s)" in page.locator(".upload-counts").inner_text()
    page.wait_for_selector(".job-status:text('finished')", timeout=JOB_MS)
    save_screenshot(page, "upload")

    studies = Catalog(store).studies()
    assert [tuple(shape) for shape in studies["shape"]] == [(256, 256, 20)]
    assert list(Catalog(store).results()["study_uid"]) == list(studies["study_uid"])
    open_dashboard(page, server, "studies")
    assert table_column(page, "job_status") == ["done"]
    assert page.locator(f"{ROWS}[data-key='{studies['study_uid'].iloc[0]}']").count() == 1


def test_no_dashboard_shows_the_phi_of_uploaded_files(upload_app, tmp_path, page):
    server, store = upload_app
    copies = write_phi_copies([pydicom_file("CT_small.dcm"), pydicom_file("MR_small.dcm")], tmp_path)
    assert all(find_phi(copy.read_bytes()) for copy in copies)
    received: list[bytes] = []  # everything the kernels sent to the browser, widget state and volumes included
    page.on(
        "websocket",
        lambda socket: socket.on(
            "framereceived", lambda frame: received.append(frame if isinstance(frame, bytes) else frame.encode())
        ),
    )
    open_dashboard(page, server, "upload", ready=".imaging-drop-zone")
    page.uncheck("text=Analyse the uploaded studies")
    drop_files(page, copies)
    page.wait_for_selector(".upload-counts", timeout=LOAD_MS)
    assert "Ingested 2 file(s)" in page.locator(".upload-counts").inner_text()
    leaks = {"upload": find_phi(page.content().encode())}

    open_dashboard(page, server, "studies")
    uploaded = Catalog(store).studies()
    assert page.locator(ROWS).count() == len(uploaded) == 3
    for study_uid in uploaded["study_uid"]:
        page.click(f"{ROWS}[data-key='{study_uid}']")
        page.wait_for_selector(f".study-title:text('{study_uid}')", timeout=LOAD_MS)
        page.wait_for_selector(f"{VIEWER}[data-status=ready]", timeout=LOAD_MS)
        leaks[f"studies {study_uid}"] = find_phi(page.content().encode())
    for name in ("jobs", "index"):
        open_dashboard(page, server, name, ready="h1")
        leaks[name] = find_phi(page.content().encode())
    assert {page_name: found for page_name, found in leaks.items() if found} == {}
    assert len(received) > 100 and find_phi(b"".join(received)) == []
    assert find_phi_in_store(store) == {}


def test_the_job_monitor_follows_a_batch_it_starts_to_the_end(tmp_path, local_dask_client, page):
    store = Store(tmp_path / "store")
    ingest([pydicom_file("CT_small.dcm")], store, progress=False)
    with _serve(store, local_dask_client) as server:
        open_dashboard(page, server, "jobs", ready="button:text('Analyse 1 study without a result')")
        assert page.locator(ROWS).count() == 0
        page.click("button:text('Analyse 1 study without a result')")
        page.wait_for_selector(ROWS, timeout=LOAD_MS)
        seen = []
        for _ in range(JOB_MS // 250):
            statuses = table_column(page, "status")
            seen.append(statuses[0] if statuses else "")
            if seen[-1] == "finished":
                break
            page.wait_for_timeout(250)
        page.wait_for_selector(".job-status:text('finished')", timeout=LOAD_MS)
        assert seen[-1] == "finished" and "running" in seen, seen
        assert table_column(page, "progress") == ["1 / 1"] and table_column(page, "failed") == ["0"]
        assert "done 1 · running 0 · pending 0 · failed 0" in page.inner_text("body")
        assert page.locator("button:text('Analyse 0 studies without a result')").is_disabled()
        save_screenshot(page, "jobs")
    assert len(Catalog(store).results()) == 1
