"""ModelsPanel: the registry table with cards and promote, running trainings with cancel, the ROC comparison, roles."""

from __future__ import annotations

import time

import pytest

from imaging_lib.jobs import run_training
from imaging_lib.models.registry import default_model, ensure_default_model, promotions
from imaging_lib.store.catalog import Catalog
from imaging_lib.store.objects import Store
from imaging_lib.training import TrainingParams, run_trial
from support.training_store import TEST_PARAMS, build_training_store
from widgets.models_panel import ModelsPanel, card_html


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A store with reviewed labels, the shipped model (the default) and one trained model."""
    store = Store(tmp_path_factory.mktemp("models-panel") / "store")
    build_training_store(store)
    shipped = ensure_default_model(store).model_id
    trial = {"trial-00": TrainingParams.from_mapping({**TEST_PARAMS, "epochs": 3}).to_dict()}
    trained = run_trial(
        "trial-00", store=store, job_id="training-panel", trials=trial, manifest=Catalog(store).training_set()
    )["model_id"]
    return store, shipped, trained


@pytest.fixture
def panel(registry):
    panel = ModelsPanel(registry[0], poll=0.2)
    yield panel
    panel.stop()


def test_the_table_lists_the_models_with_the_default_marked_and_cards(panel, registry):
    store, shipped, trained = registry
    rows = {row["model_id"]: row for row in panel.table.rows}
    assert set(rows) == {shipped, trained}
    assert rows[shipped]["default_mark"] == "✓" and rows[trained]["default_mark"] == ""
    assert rows[trained]["test_slice_auc"] is not None and rows[trained]["source"] == "training-panel/trial-00"
    panel.table.selected = trained  # what a row click does
    assert f"Model card: <code>{trained}</code>" in panel.card.value and "<table>" in panel.card.value
    assert not panel.promote_button.disabled


def test_promote_makes_the_selected_model_the_default(registry):
    store, shipped, trained = registry
    panel = ModelsPanel(store)
    try:
        panel.table.selected = trained
        record = panel.promote_selected()
        assert record["model_id"] == trained and default_model(store).model_id == trained
        assert {row["model_id"]: row["default_mark"] for row in panel.table.rows}[trained] == "✓"
        assert "is now the default model" in panel.status.value
    finally:
        panel.stop()
        panel_back = ModelsPanel(store)
        panel_back.table.selected = shipped
        panel_back.promote_selected()
        panel_back.stop()


def test_two_models_are_compared_on_the_same_held_out_studies(panel, registry):
    _store, shipped, trained = registry
    panel.model_a.value, panel.model_b.value = trained, shipped
    result = panel.compare()
    assert result["studies"] and f"held-out studies of {trained}" in result["note"]
    for chart, model_id in ((panel.roc_a, trained), (panel.roc_b, shipped)):
        assert chart.title.startswith(model_id) and chart.diagonal
        slices, studies = chart.series
        assert slices["x"][0] == 0 and slices["x"][-1] == 1 and "AUC" in slices["name"]
        assert studies["name"].startswith("studies")
    assert panel.comparison_note.value.count("sensitivity") == 2


def test_a_running_training_shows_live_and_is_cancelled_from_the_page(local_dask_client, tmp_path):
    store = Store(tmp_path / "store")
    build_training_store(store)
    slow = {**TEST_PARAMS, "input_size": [160, 160], "architecture_params": {"width": 16, "num_classes": 2}}
    job = run_training(store, {**slow, "epochs": 40}, client=local_dask_client)
    panel = ModelsPanel(store, poll=0.2)
    try:
        deadline = time.monotonic() + 60
        while job.job_id not in panel.progress or not panel.progress[job.job_id][0].auc_chart.series[0]["x"]:
            assert time.monotonic() < deadline, "the running training never showed on the page"
            time.sleep(0.1)
        progress, button = panel.progress[job.job_id]
        assert button.description == "Cancel training" and button.layout.display != "none"
        button.click()
        job.wait(120)
        trial = job.snapshot()["metrics"]["trials"]["trial-00"]
        assert trial["status"] == "cancelled" and trial["stopped"].endswith("cancelled on the Models page")
    finally:
        panel.stop()


def test_a_viewer_sees_no_promote_or_cancel_and_a_forged_click_is_refused(registry, monkeypatch):
    store, _shipped, trained = registry
    for name, value in {"IMAGING_ACCESS": "team", "IMAGING_USER": "vera", "IMAGING_USER_GROUPS": "viewer"}.items():
        monkeypatch.setenv(name, value)
    panel = ModelsPanel(store)
    try:
        assert panel.promote_button.layout.display == "none"
        before = promotions(store)
        panel.table.selected = trained
        assert panel.promote_selected() is None  # as if the hidden button's click were forged
        assert "user vera: may not promote a model to the default" in panel.status.value and promotions(store) == before
    finally:
        panel.stop()


def test_a_card_from_the_store_cannot_carry_markup():
    html = card_html("# Card\n\n<img src=x onerror=alert(1)> [link](javascript:alert(1))")
    assert "<img" not in html and "javascript:" not in html and "<h1>Card</h1>" in html
