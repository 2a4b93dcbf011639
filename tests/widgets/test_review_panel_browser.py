"""Review in the study browser, in real headless Chromium served by real Voilà (the dashboards' own apps).

On a copy of the demo store (four sample studies, predicted) whose brain MR already has a
label mask drawn from Python, a reviewer (``IMAGING_USER``, what the dashboard records as
"who") rejects the brain's prediction with a comment, labels the viewer's slice and marks
the label mask reviewed. The catalog table's review column and the landing page's counts
show the rejection; after a reload the page shows the versions the store holds, and they
read back identical.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from imaging_lib.dashboard.server import apps_dir
from imaging_lib.store import label_records, records, review
from imaging_lib.store.catalog import Catalog
from imaging_lib.store.labels import label_history, latest_label, read_label_mask, save_label_version
from imaging_lib.store.objects import Store
from imaging_lib.volume import Volume
from support.browser import assert_real_image, chromium_context, collect_console, colour_fraction, screenshot_pixels
from support.reviewed import copy_store
from support.servers import voila_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
LOAD_MS = 120_000
ROWS = ".imaging-record-table tbody tr"
VIEWER = ".imaging-papaya"
REVIEWER = "reviewer-a"
COMMENT = "Ring artefact on the suspicious slice; no lesion."
BLUE = (0, 0, 255)


@pytest.fixture(scope="module")
def review_app(demo_store, tmp_path_factory, local_dask_client):
    store = copy_store(demo_store, Store(tmp_path_factory.mktemp("review-app") / "store"))
    env = {
        "IMAGING_STORE": store.url,
        "IMAGING_DASK_SCHEDULER": local_dask_client.scheduler.address,
        "IMAGING_USER": REVIEWER,
    }
    with voila_server(apps_dir(), serve_folder=True, env=env) as server:
        yield server, store


def _brain(store: Store) -> dict:
    studies = Catalog(store).studies()
    brain = studies["shape"].map(lambda shape: tuple(shape) == (256, 256, 20)) & (studies["study_label"] == "no_lesion")
    return studies.loc[brain].iloc[0].to_dict()  # the real series (the demo also has a copy with a lesion)


def _row_cell(page, study_uid: str, column: str) -> str:
    return page.locator(f"{ROWS}[data-key='{study_uid}'] td[data-column={column}]").inner_text()


def _open_brain(page, server, brain: dict, overlays: int) -> None:
    page.goto(server.url_for("studies.ipynb"))
    page.wait_for_selector(ROWS, timeout=LOAD_MS)
    page.click(f"{ROWS}[data-key='{brain['study_uid']}']")
    page.wait_for_selector(f"{VIEWER}[data-status=ready][data-overlays='{overlays}']", timeout=LOAD_MS)
    page.wait_for_selector(".review-panel .review-status", timeout=LOAD_MS)


def _click_and_wait_saved(page, selector: str, version: str) -> None:
    page.click(selector)
    page.wait_for_selector(f".review-message[data-state=saved]:has-text('Saved {version} by {REVIEWER}')")


def test_a_rejection_shows_in_the_table_and_the_counts_and_saved_versions_read_back_after_a_reload(review_app):
    server, store = review_app
    brain = _brain(store)
    uid = brain["study_uid"]
    volume = store.read_volume(brain["volume_key"])
    drawn = np.zeros(volume.shape[:3], dtype=np.uint8)
    drawn[90:170, 80:180, :] = 1
    truth = latest_label(store, uid)["version"]  # the demo's ground truth, v000001
    save_label_version(store, uid, parent=truth, mask=Volume(drawn, volume.affine), tool="brush", created_by="drawer")
    overlays = 2 + int((Catalog(store).segmentations().get("study_uid", []) == uid).sum())  # heat map, label mask
    result = Catalog(store).latest_results(uid)[uid][1]

    with chromium_context(viewport=(1400, 1000), timeout_ms=LOAD_MS) as browser:
        page = browser.new_page()
        console = collect_console(page)
        try:
            _open_brain(page, server, brain, overlays)
            assert {*page.locator(f"{ROWS} td[data-column=review_status]").all_inner_texts()} == {"needs review"}
            canvas = screenshot_pixels(page.locator(f"{VIEWER} canvas").first)
            assert_real_image(canvas)
            assert colour_fraction(canvas, BLUE, tolerance=110, dominance=60) > 0.01, "no label mask on the viewer"

            page.fill(".review-panel textarea", COMMENT)
            _click_and_wait_saved(page, ".review-panel button:text-is('Reject prediction')", "v000003")
            page.wait_for_function(
                "([selector]) => document.querySelector(selector).innerText === 'rejected'",
                arg=[f"{ROWS}[data-key='{uid}'] td[data-column=review_status]"],
            )
            slice_index = int(page.get_attribute(VIEWER, "data-voxel").split(",")[2])
            assert slice_index == result["most_suspicious_slice"]
            study_label = records.read_record(store, label_history(store, uid)[-1]["record_key"])["study_label"]
            slice_button = "no lesion" if study_label == "no_lesion" else "lesion"
            page.click(f".review-slice-label button:text-is('{slice_button}')")
            _click_and_wait_saved(page, ".review-panel button:text-is('Save slice label')", "v000004")
            _click_and_wait_saved(page, ".review-panel button:text-is('Mark mask reviewed')", "v000005")
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.locator(".review-panel").screenshot(path=str(SCREENSHOTS / "review.png"))
            assert _row_cell(page, uid, "review_status") == "rejected"

            page.goto(server.url_for("index.ipynb"))
            page.wait_for_selector(".review-counts", timeout=LOAD_MS)
            counts = {
                tile.get_attribute("data-name"): int(tile.get_attribute("data-value"))
                for tile in page.locator(".review-count").all()
            }
            assert counts == {"studies": 7, "predicted": 7, "needs review": 6, "accepted": 0, "rejected": 1}
            tiles = screenshot_pixels(page.locator(".review-counts"))
            assert colour_fraction(tiles, (198, 40, 40), tolerance=20) > 0.05  # the red "Rejected" tile is drawn

            page.reload()
            _open_brain(page, server, brain, overlays)  # a fresh kernel reads everything back from the store
            history = label_history(store, uid)
            shown = page.locator(".label-history tr.label-version")
            assert shown.count() == len(history) == 5
            pairs = [
                (row.get_attribute("data-version"), row.get_attribute("data-content-sha256")) for row in shown.all()
            ]
            assert pairs == [(v["version"], v["content_sha256"]) for v in reversed(history)]
            assert page.get_attribute(".review-status", "data-status") == review.REJECTED
            assert page.get_attribute(".slice-label", "data-slice") == str(slice_index)
            assert slice_button in page.locator(".slice-label").inner_text()
            assert COMMENT in page.locator(".label-history").inner_text()
        finally:
            print("\n".join(console[-40:]))  # shown when the test failed
            page.close()

    latest = history[-1]
    assert latest["provenance"]["created_by"] == REVIEWER and latest["tool"] == "review-panel"
    assert latest["decision"]["verdict"] == "rejected" and latest["decision"]["comment"] == COMMENT
    assert latest["slice_labels"] == {str(slice_index): study_label}
    assert latest["mask"]["reviewed"] is True and np.array_equal(read_label_mask(store, latest).array, drawn)
    for version in history:  # every stored version reads back with the content its hash names
        body = {name: version[name] for name in label_records.LABEL_CONTENT_FIELDS}
        assert label_records.canonical_sha256(body) == version["content_sha256"]
    assert Catalog(store).review_counts()["rejected"] == 1
