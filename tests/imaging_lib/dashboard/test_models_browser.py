"""The Models page in real headless Chromium, served by real Voilà, while a real training runs on Dask.

The store holds reviewed labels, the shipped model (the default) and one trained model.
A training job started from this process on the session's LocalCluster appears on the page
with a live loss curve (the chart's pixels change between two screenshots while epochs go
by) and is cancelled with the page's button; the two registered models' ROC curves are
drawn side by side. The page's screenshot goes to ``docs/screenshots/models.png``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from imaging_lib.dashboard.server import apps_dir
from imaging_lib.jobs import JobView, run_training
from imaging_lib.models.registry import ensure_default_model
from imaging_lib.store import layout
from imaging_lib.store.catalog import Catalog
from imaging_lib.store.objects import Store
from imaging_lib.training import TrainingParams, run_trial
from support.browser import chromium_context, collect_console, colour_fraction, screenshot_pixels
from support.servers import voila_server
from support.training_store import TEST_PARAMS, build_training_store

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCREENSHOTS = Path(__file__).resolve().parents[3] / "docs" / "screenshots"
LOAD_MS = 120_000
BLUE = (37, 99, 235)  # the first trial's line
SLOW = {**TEST_PARAMS, "input_size": [160, 160], "architecture_params": {"width": 16, "num_classes": 2}}
CHART = ".imaging-training-progress .imaging-line-chart"


@pytest.fixture(scope="module")
def models_app(tmp_path_factory, local_dask_client):
    store = Store(tmp_path_factory.mktemp("models-app") / "store")
    build_training_store(store)
    ensure_default_model(store)
    trial = {"trial-00": TrainingParams.from_mapping({**TEST_PARAMS, "epochs": 3}).to_dict()}
    manifest = Catalog(store).training_set()
    run_trial("trial-00", store=store, job_id="training-earlier", trials=trial, manifest=manifest)
    env = {"IMAGING_STORE": store.url, "IMAGING_DASK_SCHEDULER": local_dask_client.scheduler.address}
    with voila_server(apps_dir(), serve_folder=True, env=env) as server:
        yield server, store


def _epochs(store: Store, job_id: str) -> int:
    key = layout.trial_metrics_key(job_id, "trial-00")
    return len(store.read_json(key)["epochs"]) if store.exists(key) else 0


def test_a_running_training_is_plotted_live_cancelled_and_models_are_compared(models_app, local_dask_client):
    server, store = models_app
    job = run_training(store, {**SLOW, "epochs": 300}, client=local_dask_client)
    with chromium_context(viewport=(1280, 1100), timeout_ms=LOAD_MS) as browser:
        page = browser.new_page()
        console = collect_console(page)
        try:
            page.goto(server.url_for("models.ipynb"))
            page.wait_for_selector(f"{CHART} path.line", timeout=LOAD_MS)  # the first epoch is drawn
            chart = page.locator(CHART).first
            before, epochs_before = screenshot_pixels(chart), _epochs(store, job.job_id)
            assert colour_fraction(before, BLUE, tolerance=40) > 0.0005, "no loss curve drawn"
            deadline = time.monotonic() + 60
            while _epochs(store, job.job_id) < epochs_before + 3:
                assert time.monotonic() < deadline and not job.finished
                time.sleep(0.2)
            page.wait_for_timeout(2500)  # the page polls the job record every second
            after = screenshot_pixels(chart)
            changed = np.any(np.abs(after.astype(int) - before.astype(int)) > 30, axis=-1).mean()
            assert changed > 0.0005, f"the curve did not move while {job.job_id} trained ({changed:.5f})"

            rows = page.locator(".imaging-record-table tbody tr")
            assert rows.count() == 2  # the shipped model and the earlier trained one
            page.click("button:text('Compare on held-out studies')")
            page.wait_for_function(
                "() => document.querySelectorAll('.imaging-models-panel .imaging-line-chart path.line').length >= 4",
                timeout=LOAD_MS,
            )
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.set_viewport_size({"width": 1280, "height": 1500})  # Voilà scrolls inside the page: show it all
            page.wait_for_timeout(500)
            page.screenshot(path=str(SCREENSHOTS / "models.png"))

            page.click("button:text('Cancel training')")
            job.wait(120)
            trial = JobView(store, job.job_id).snapshot()["metrics"]["trials"]["trial-00"]
            assert trial["status"] == "cancelled" and 3 <= len(trial["epochs"]) < 300
        finally:
            if not job.finished:
                from imaging_lib.jobs import cancel_training

                cancel_training(store, job.job_id, reason="test cleanup")
                job.wait(120)
            print("\n".join(console[-40:]))
