"""``imaging-lab demo``: what ``make demo`` runs, as the real command in a subprocess.

The command runs on the session's Dask LocalCluster (``--scheduler``) with a fresh store,
first with ``--no-serve``; then again, serving: the second run redoes nothing, prints the
dashboards' URL with its token, serves them, and stops cleanly on SIGTERM.
"""

from __future__ import annotations

import posixpath
import re
import signal
import subprocess
import sys

import psutil
import pytest
import requests

from imaging_lib.demo import sample_sources, studies_summary
from imaging_lib.demo_data import synthetic_lesion_studies
from imaging_lib.models.registry import default_model
from imaging_lib.store import layout
from imaging_lib.store.catalog import Catalog
from imaging_lib.store.objects import Store
from support.servers import free_port

pytestmark = pytest.mark.slow


def _command(store: Store, scheduler: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "imaging_lib.cli", "demo", "--store", store.url, "--scheduler", scheduler, *args]


def test_demo_ingests_predicts_and_reports_every_sample_study(tmp_path, local_dask_client):
    store = Store(tmp_path / "store")
    scheduler = local_dask_client.scheduler.address
    first = subprocess.run(
        _command(store, scheduler, "--no-serve"), capture_output=True, text=True, timeout=900, check=False
    )
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]

    catalog = Catalog(store)
    studies, results = catalog.studies(), catalog.results()
    # the brain series, sample_image.nii.gz, CT_small, MR_small, and a lesion copy of the first three
    assert len(studies) == 7
    assert sorted(tuple(shape) for shape in studies["shape"]) == sorted(
        [(256, 256, 20), (161, 191, 151), (128, 128, 1), (64, 64, 1), (256, 256, 20), (161, 191, 151), (128, 128, 1)]
    )
    assert sorted(studies["study_label"]) == ["lesion"] * 3 + ["no_lesion"] * 4  # the known truth, as labels
    assert set(results["study_uid"]) == set(studies["study_uid"])
    default = default_model(store)  # the shipped model, registered in the store and promoted; no training
    assert default.model_id is not None and set(results["model_id"]) == {default.model_id}
    truth = dict(zip(studies["study_uid"], studies["study_label"], strict=True))
    hits = {uid: label for uid, label in zip(results["study_uid"], results["label"], strict=True)}
    assert all(hits[uid] == "lesion" for uid, label in truth.items() if label == "lesion")
    assert sum(hits[uid] == "lesion" for uid, label in truth.items() if label == "no_lesion") <= 1
    assert all(store.exists(key) for key in results["explanation_key"])
    for study_uid in studies["study_uid"]:
        folder = posixpath.dirname(layout.report_key(study_uid, "report", "html")) + "/"
        reports = {posixpath.splitext(key)[1] for key in store.list(folder)}
        assert {".html", ".pdf"} <= reports, (study_uid, reports)

    # the study table (shapes, spacings, modalities, predictions) is printed before serving
    assert studies_summary(store) in first.stdout
    assert "256x256x20" in first.stdout and "0.859 x 0.859 x 7" in first.stdout
    assert "7 studies, 0 failure(s)" in first.stdout

    port = free_port()
    second = subprocess.Popen(
        _command(store, scheduler, "--port", str(port)), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        printed = []
        for line in second.stdout:  # the URL line comes once Voila answers
            printed.append(line)
            if line.startswith("Dashboards: "):
                break
        url = re.fullmatch(r"Dashboards: (http://127\.0\.0\.1:\d+/)\?token=(\S+)\n", printed[-1])
        assert url, "".join(printed)[-3000:]
        base, token = url.groups()
        assert base == f"http://127.0.0.1:{port}/"
        assert requests.get(f"{base}voila/render/studies.ipynb", params={"token": token}, timeout=120).ok
        anonymous = requests.get(f"{base}voila/render/studies.ipynb", allow_redirects=False, timeout=30)
        assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
        voila = [p for p in psutil.Process(second.pid).children(recursive=True) if "voila" in " ".join(p.cmdline())]
        assert voila
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(60)
    assert second.returncode == 0
    assert not [p for p in voila if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    files = len(sample_sources()) + sum(len(study.uploads) for study in synthetic_lesion_studies())
    assert f"skipped {files} already stored" in "".join(printed)
    jobs = Catalog(store).jobs()
    batches = jobs[jobs["kind"] == "batch"].sort_values("created_at")
    assert len(batches) == 2
    assert batches.iloc[-1]["counts.skipped"] == 7 and batches.iloc[-1]["counts.done"] == 0  # nothing recomputed
    assert len(Catalog(store).results()) == len(results)
