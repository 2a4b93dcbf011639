"""SegmentPanel: a click in the viewer segments on a real Dask cluster and comes back on screen."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from imaging_lib.phantoms import demo_phantom
from imaging_lib.store.layout import segmentation_record_key
from imaging_lib.store.objects import Store
from widgets.papaya import PapayaViewer
from widgets.segment_panel import OVERLAY_NAME, SegmentPanel, quantification_html

TIMEOUT = 120


@pytest.fixture(scope="module")
def phantom():
    return demo_phantom()


def click(viewer: PapayaViewer, ijk) -> None:
    """Deliver a click the way the browser does: a message to the widget."""
    viewer._handle_browser_message(viewer, {"type": "click", "ijk": [int(v) for v in ijk]}, None)


def _absolute(phantom, index: int) -> dict:
    return {"tolerance_mode": "absolute", "tolerance": (phantom.ellipsoids[index].intensity - 20.0) / 2}


def test_click_segments_on_dask_and_shows_mask_and_numbers(phantom, local_dask_client, tmp_path):
    store = Store(tmp_path / "store")
    viewer = PapayaViewer(phantom.volume)
    panel = SegmentPanel(
        viewer, phantom.volume, client=local_dask_client, store=store, study_uid="phantom", params=_absolute(phantom, 0)
    )
    assert panel.children[0] is viewer
    click(viewer, phantom.seed_ijk(0))
    assert panel.state == "running" and viewer.busy  # returned at once, work under way
    assert "Segmenting" in viewer.busy_message
    result = panel.wait(TIMEOUT)
    assert not viewer.busy and panel.state == "done"

    truth = phantom.truth(0)
    quantification = result["quantification"]
    assert quantification["volume_ml"] == pytest.approx(truth["volume_ml"], rel=0.02)
    assert [spec["name"] for spec in viewer.overlays] == [OVERLAY_NAME]
    assert 'class="segment-volume-ml"' in panel.table.value
    assert f"{quantification['volume_ml']:.2f}" in panel.table.value
    assert np.array_equal(result["mask"].affine, phantom.volume.affine)
    assert result["mask"].array[phantom.seed_ijk(0)] == 1

    record = store.read_json(segmentation_record_key("phantom", result["record"]["seg_id"]))
    assert record["quantification"]["volume_ml"] == quantification["volume_ml"]
    assert record["seed_ijk"] == list(phantom.seed_ijk(0))
    assert [event["event"] for event in panel.history] == ["submitted", "done"]

    # a second segmentation replaces the overlay, it does not stack another
    panel.params = _absolute(phantom, 1)
    click(viewer, phantom.seed_ijk(1))
    result = panel.wait(TIMEOUT)
    assert result["quantification"]["volume_ml"] == pytest.approx(phantom.truth(1)["volume_ml"], rel=0.02)
    assert [spec["name"] for spec in viewer.overlays] == [OVERLAY_NAME]


def test_second_click_cancels_the_pending_one(phantom, local_dask_client):
    from distributed import Event

    gate = Event(f"hold-{uuid.uuid4().hex}", client=local_dask_client)

    def hold(name: str) -> bool:  # nested, so cloudpickle ships it by value to the workers
        from distributed import Event as WorkerEvent

        return WorkerEvent(name).wait(TIMEOUT)

    workers = list(local_dask_client.scheduler_info()["workers"])
    holds = [local_dask_client.submit(hold, gate.name, workers=[w], pure=False) for w in workers]
    viewer = PapayaViewer(phantom.volume)
    panel = SegmentPanel(viewer, client=local_dask_client, params=_absolute(phantom, 1))
    try:
        first = panel.segment(phantom.seed_ijk(0))
        second = panel.segment(phantom.seed_ijk(1))  # every worker is busy: the first is still pending
        assert first.status == "cancelled"
        assert [event["event"] for event in panel.history] == ["submitted", "cancelled", "submitted"]
        assert panel.history[1]["seed"] == phantom.seed_ijk(0)
        assert viewer.busy
    finally:
        gate.set()
    assert all(h.result(TIMEOUT) for h in holds)
    result = panel.wait(TIMEOUT)
    assert second.status == "finished"
    assert result["mask"].metadata["seed_ijk"] == list(phantom.seed_ijk(1))
    assert result["quantification"]["volume_ml"] == pytest.approx(phantom.truth(1)["volume_ml"], rel=0.02)
    assert [event["event"] for event in panel.history][-1] == "done"
    assert not viewer.busy


def test_failed_segmentation_is_reported_not_raised(phantom, local_dask_client):
    viewer = PapayaViewer(phantom.volume)
    panel = SegmentPanel(viewer, client=local_dask_client, params={"max_volume_ml": 1.0})
    panel.segment(phantom.seed_ijk(0))  # an 11.5 mL sphere against a 1 mL guard
    assert panel.wait(TIMEOUT) is None
    assert panel.state == "failed" and not viewer.busy
    assert "RegionTooLarge" not in panel.error and "above the limit of 1 mL" in panel.error
    assert "failed" in panel.status.value and panel.table.value == ""
    assert OVERLAY_NAME not in [spec["name"] for spec in viewer.overlays]


def test_panel_needs_a_volume():
    with pytest.raises(ValueError, match="volume"):
        SegmentPanel(PapayaViewer())


def test_quantification_html_shows_the_numbers():
    q = {
        "volume_ml": 12.3456,
        "voxel_count": 12345,
        "intensity_mean": 101.25,
        "intensity_std": 8.0,
        "intensity_min": 60.0,
        "intensity_max": 140.0,
        "intensity_p25": 95.0,
        "intensity_p50": 100.0,
        "intensity_p75": 106.0,
        "centroid_x_mm": 1.0,
        "centroid_y_mm": -2.0,
        "centroid_z_mm": 3.5,
        "components": 1,
        "units": "HU",
    }
    table = quantification_html(q, (1, 2, 3), "seg-1")
    assert 'data-value="12.3456"' in table and ">12.35</span> mL" in table
    assert "12,345" in table and "101.2 ± 8.0 HU" in table and "1, 2, 3" in table and "seg-1" in table
