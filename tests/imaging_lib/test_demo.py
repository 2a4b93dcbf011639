"""``imaging-lab demo``: what ``make demo`` runs, as the real command in a subprocess.

The command runs on the session's Dask LocalCluster (``--scheduler``) with a fresh store,
first with ``--no-serve``; then :func:`prepare_demo` again in process, which prints nothing
and tells its steps through callbacks; then the command again, serving: it redoes nothing,
prints the dashboards' URL with its token, serves them, and stops cleanly on SIGTERM.
"""

from __future__ import annotations

import os
import posixpath
import re
import signal
import stat
import subprocess
import sys

import psutil
import pytest
import requests

from imaging_lib.demo import prepare_demo, sample_sources, studies_summary
from imaging_lib.demo_data import synthetic_lesion_studies
from imaging_lib.jobs import Job
from imaging_lib.models.registry import default_model
from imaging_lib.store import layout
from imaging_lib.store.catalog import Catalog
from imaging_lib.store.objects import Store
from support.servers import free_port

pytestmark = pytest.mark.slow


def _command(store: Store, scheduler: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "imaging_lib.cli", "demo", "--store", store.url, "--scheduler", scheduler, *args]


def test_demo_ingests_predicts_and_reports_every_sample_study(tmp_path, local_dask_client, capsys, monkeypatch):
    store = Store(tmp_path / "store")
    scheduler = local_dask_client.scheduler.address
    key_file = tmp_path / "config" / "imaging-lab" / "deid.key"  # no set-up: the demo makes the user's key
    environment = {**os.environ, "IMAGING_DEID_KEY_FILE": str(key_file)}
    environment.pop("IMAGING_DEID_SECRET", None)
    first = subprocess.run(
        _command(store, scheduler, "--no-serve"),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env=environment,
    )
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_bytes().strip().decode()

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
    # each job is announced with its record and Dask dashboard, and followed by a bar
    for kind in ("batch", "report"):
        assert re.search(rf"^job {kind}-\S+: record {re.escape(store.url)}/records/jobs/", first.stdout, re.M)
        assert re.search(rf"{kind}-\S+: 100%\|", first.stderr), first.stderr[-2000:]

    # the library itself prints nothing: it reports through its callbacks and its outcome
    capsys.readouterr()
    files = len(sample_sources()) + sum(len(study.uploads) for study in synthetic_lesion_studies())
    heard: list[object] = []
    monkeypatch.setenv("IMAGING_DEID_KEY_FILE", str(key_file))  # the user's key the command made
    monkeypatch.delenv("IMAGING_DEID_SECRET", raising=False)
    again = prepare_demo(store, local_dask_client, on_ingested=heard.append, on_job=heard.append)
    assert capsys.readouterr().out == ""
    assert heard[0] is again.ingest and len(again.ingest.skipped) == files
    assert [type(item) for item in heard[1:]] == [Job, Job] and heard[1:] == [again.batch, again.reports]
    assert again.batch.counts["skipped"] == 7 and again.reports.counts["skipped"] == 7
    assert str(again) == f"demo store {store.url}: 7 studies, 0 failure(s)"

    port = free_port()
    second = subprocess.Popen(
        _command(store, scheduler, "--port", str(port)),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=environment,
    )
    try:
        printed = []
        for line in second.stdout:  # the URL line comes once Voila answers
            printed.append(line)
            if line.startswith("Dashboards: "):
                break
        # the URL opens the landing page, not Voila's list of files
        url = re.fullmatch(
            r"Dashboards: (http://127\.0\.0\.1:\d+/)voila/render/index\.ipynb\?token=(\S+)\n", printed[-1]
        )
        assert url, "".join(printed)[-3000:]
        base, token = url.groups()
        assert base == f"http://127.0.0.1:{port}/"
        landing = requests.get(printed[-1].split(" ", 1)[1].strip(), timeout=120)
        assert landing.ok and "Imaging lab dashboards" in landing.text
        assert requests.get(f"{base}voila/render/studies.ipynb", params={"token": token}, timeout=120).ok
        anonymous = requests.get(f"{base}voila/render/studies.ipynb", allow_redirects=False, timeout=30)
        assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
        started = psutil.Process(second.pid).children(recursive=True)
        voila = [p for p in started if "voila" in " ".join(p.cmdline())]
        assert voila
        assert not [p for p in [psutil.Process(second.pid), *started] if key in " ".join(p.cmdline())]  # not in argv
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(60)
    assert second.returncode == 0
    assert not [p for p in voila if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert f"skipped {files} already stored" in "".join(printed)
    jobs = Catalog(store).jobs()
    batches = jobs[jobs["kind"] == "batch"].sort_values("created_at")
    assert len(batches) == 3
    assert all(batches.iloc[1:]["counts.skipped"] == 7) and all(batches.iloc[1:]["counts.done"] == 0)  # nothing redone
    assert len(Catalog(store).results()) == len(results)
