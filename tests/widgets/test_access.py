"""Role gates of the dashboards' panels: controls hidden by role, actions refused on the kernel side, the user recorded.

Each panel is built in a process whose identity is set as the dashboards' service sets a
visitor's kernel (``IMAGING_ACCESS=team``, ``IMAGING_USER``, ``IMAGING_USER_GROUPS``). A
viewer's panels hide upload, batch and segmentation, and refuse them when called anyway
(what a forged websocket message does); a researcher's do them, and the records name
the researcher, not the operating-system user of the Dask workers.
"""

from __future__ import annotations

import os

import pytest

from imaging_lib import identity
from imaging_lib.errors import PermissionDenied
from imaging_lib.jobs import cluster
from imaging_lib.phantoms import demo_phantom
from imaging_lib.sample_data import pydicom_file
from imaging_lib.store.catalog import Catalog
from imaging_lib.store.layout import segmentation_record_key
from imaging_lib.store.objects import Store
from support.demo_store import TEST_PARAMS
from widgets.access import GATED_CLASS, IdentityBar, gate, requires_class, with_identity
from widgets.cluster_selector import ClusterSelector
from widgets.job_monitor import JobMonitor
from widgets.papaya import PapayaViewer
from widgets.segment_panel import READ_ONLY_MESSAGE, SegmentPanel
from widgets.upload_panel import UploadPanel

TIMEOUT = 180


@pytest.fixture(autouse=True)
def clean_identity(monkeypatch):
    for name in ("IMAGING_ACCESS", "IMAGING_USER", "IMAGING_USER_GROUPS", "JUPYTERHUB_USER", "IMAGING_DASK_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(identity, "_bound_listeners", [])
    monkeypatch.setattr(cluster, "_selected_profile", None)


def as_user(monkeypatch, name: str, groups: str) -> None:
    monkeypatch.setenv("IMAGING_ACCESS", "team")
    monkeypatch.setenv("IMAGING_USER", name)
    monkeypatch.setenv("IMAGING_USER_GROUPS", groups)


def shown(widget) -> bool:
    return widget.layout.display != "none"


def test_a_gate_marks_the_control_and_hides_it_from_roles_without_the_permission(monkeypatch):
    import ipywidgets

    as_user(monkeypatch, "bob", "viewer")
    button = gate(ipywidgets.Button(description="Accept"), "review")
    assert {GATED_CLASS, requires_class("review")} <= set(button._dom_classes)
    assert not shown(button)
    as_user(monkeypatch, "erin", "reviewer")
    assert shown(gate(ipywidgets.Button(), "review"))
    with pytest.raises(ValueError, match="unknown permission"):
        gate(ipywidgets.Button(), "acept")


def test_a_kernel_bound_late_shows_its_visitors_controls_and_name(monkeypatch):
    import ipywidgets

    monkeypatch.setattr(os, "environ", dict(os.environ))
    monkeypatch.setenv("IMAGING_ACCESS", "team")  # a pre-started kernel: nobody yet
    button = gate(ipywidgets.Button(), "run_batch")
    bar = IdentityBar()
    assert not shown(button) and "no role" in bar.value
    identity.bind("alice", ["researcher"])
    assert shown(button)
    assert "alice" in bar.value and "researcher" in bar.value and "Sign out" in bar.value


def test_the_identity_bar_is_only_for_teams_and_escapes_names(monkeypatch):
    import ipywidgets

    panel = ipywidgets.HTML("panel")
    assert with_identity(panel) is panel and IdentityBar().value == ""
    as_user(monkeypatch, "<script>x</script>", "viewer")
    monkeypatch.setenv("VOILA_BASE_URL", "/services/dashboards/")
    wrapped = with_identity(panel)
    bar = wrapped.children[0]
    assert wrapped.children[1] is panel
    assert "&lt;script&gt;" in bar.value and "<script>" not in bar.value
    assert "href='/services/dashboards/logout'" in bar.value and "viewer" in bar.value


def _uploads() -> list[tuple[str, bytes]]:
    return [(path.name, path.read_bytes()) for path in (pydicom_file("MR_small.dcm"),)]


def test_a_viewer_may_not_upload_even_when_the_drop_is_forged(monkeypatch, tmp_path):
    as_user(monkeypatch, "bob", "viewer")
    store = Store(tmp_path / "store")
    panel = UploadPanel(store)
    assert not shown(panel.drop) and not shown(panel.analyse)
    with pytest.raises(PermissionDenied, match="user bob: may not upload studies"):
        panel.drop.receive(_uploads())  # what the browser's drop message does
    assert panel.summary is None and Catalog(store).studies().empty


def test_an_uploader_uploads_without_analysing_and_is_recorded(monkeypatch, tmp_path):
    as_user(monkeypatch, "pm", "viewer,uploader")
    store = Store(tmp_path / "store")
    panel = UploadPanel(store)
    assert shown(panel.drop) and not shown(panel.analyse)
    panel.drop.receive(_uploads())
    studies = Catalog(store).studies()
    assert len(studies) == 1 and list(studies["created_by"]) == ["pm"]
    assert panel.job is None  # no batch: an uploader may not start one
    with pytest.raises(PermissionDenied, match="may not start a batch"):
        panel.start_batch(panel.summary.studies)


def test_a_viewer_sees_no_batch_button_and_a_forged_press_starts_nothing(monkeypatch, tmp_path):
    as_user(monkeypatch, "bob", "viewer")
    store = Store(tmp_path / "store")
    monitor = JobMonitor(store)
    assert not shown(monitor.run_button) and not shown(monitor.cluster.profile)
    monitor.run_button.click()  # what a forged click does: ipywidgets logs the refusal
    with pytest.raises(PermissionDenied, match="may not start a batch"):
        monitor.start_batch()
    assert Catalog(store).job_records("batch") == [] and monitor.job is None


def test_a_researchers_batch_records_them_not_the_workers_user(monkeypatch, tmp_path, local_dask_client):
    from imaging_lib.ingestion import ingest

    store = Store(tmp_path / "store")
    ingest([pydicom_file("MR_small.dcm")], store, progress=False)
    as_user(monkeypatch, "alice", "researcher")
    monitor = JobMonitor(store, client=local_dask_client, params=TEST_PARAMS)
    assert shown(monitor.run_button)
    job = monitor.start_batch().wait(TIMEOUT)
    assert job.counts["done"] == 1
    results = Catalog(store).results()
    assert list(results["created_by"]) == ["alice"]  # written on a worker whose environment has no IMAGING_USER
    assert [record["provenance"]["created_by"] for record in Catalog(store).job_records("batch")] == ["alice"]


def test_a_batch_without_a_cluster_says_so_on_the_page(monkeypatch, tmp_path):
    from imaging_lib.ingestion import ingest

    store = Store(tmp_path / "store")
    ingest([pydicom_file("MR_small.dcm")], store, progress=False)
    as_user(monkeypatch, "alice", "researcher")
    monkeypatch.setenv("IMAGING_DASK_PROFILE", "gateway")
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN", raising=False)
    monitor = JobMonitor(store)
    assert "Dask Gateway" in monitor.cluster.where.value
    assert monitor.start_batch() is None
    message = monitor.progress_area.children[0].value
    assert "job-error" in message and ("Dask Gateway address" in message or "JupyterHub token" in message)
    assert not monitor.run_button.disabled


def test_only_an_admin_switches_the_cluster_profile_and_a_forged_switch_is_undone(monkeypatch):
    as_user(monkeypatch, "bob", "viewer")
    selector = ClusterSelector()
    assert selector.profile.value == "local" and not shown(selector.profile)
    selector.profile.value = "gateway"  # what a forged websocket update does
    assert selector.profile.value == "local" and cluster.resolve_profile() == "local"
    assert "local Dask cluster" in selector.where.value

    as_user(monkeypatch, "dave", "admin")
    selector = ClusterSelector()
    assert shown(selector.profile)
    selector.profile.value = "gateway"
    assert cluster.resolve_profile() == "gateway" and "Dask Gateway" in selector.where.value


def click(viewer: PapayaViewer, ijk) -> None:
    viewer._handle_browser_message(viewer, {"type": "click", "ijk": [int(v) for v in ijk]}, None)


def test_segmentation_saves_only_for_roles_that_may_and_names_who_clicked(monkeypatch, tmp_path, local_dask_client):
    phantom = demo_phantom()
    store = Store(tmp_path / "store")
    params = {"tolerance_mode": "absolute", "tolerance": (phantom.ellipsoids[0].intensity - 20.0) / 2}

    as_user(monkeypatch, "bob", "viewer")
    viewer = PapayaViewer(phantom.volume)
    panel = SegmentPanel(viewer, client=local_dask_client, store=store, study_uid="phantom", params=params)
    assert READ_ONLY_MESSAGE in panel.status.value
    click(viewer, phantom.seed_ijk(0))  # the widget logs the refusal
    with pytest.raises(PermissionDenied, match="may not save segmentations"):
        panel.segment(phantom.seed_ijk(0))
    assert panel.state == "idle" and not store.list("records/segmentations/")

    as_user(monkeypatch, "erin", "reviewer")
    viewer = PapayaViewer(phantom.volume)
    panel = SegmentPanel(viewer, client=local_dask_client, store=store, study_uid="phantom", params=params)
    click(viewer, phantom.seed_ijk(0))
    result = panel.wait(TIMEOUT)
    record = store.read_json(segmentation_record_key("phantom", result["record"]["seg_id"]))
    assert record["provenance"]["created_by"] == "erin"
