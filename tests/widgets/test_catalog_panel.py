"""CatalogPanel: the study browser's table, filters and study view, over the real demo store."""

from __future__ import annotations

import nibabel as nib
import pandas as pd
import pytest

from imaging_lib.store.catalog import Catalog
from widgets.catalog_panel import (
    HEATMAP_OVERLAY,
    CatalogPanel,
    prediction_html,
    quantification_table,
    study_table,
)


def _studies(*uids: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "study_uid": list(uids),
            "modality": ["MR"] * len(uids),
            "study_date": ["2001-02-03"] * len(uids),
            "volume_key": [f"v/{u}" for u in uids],
        }
    )


def test_study_table_joins_the_latest_result_and_status():
    results = pd.DataFrame(
        {
            "study_uid": ["a", "a", "b"],
            "label": ["negative", "lesion", "negative"],
            "probability": [0.1, 0.8, 0.3],
            "created_at": pd.to_datetime(["2024-01-01", "2024-05-01", "2024-01-01"], utc=True),
        }
    )
    table = study_table(_studies("a", "b", "c"), results, [])
    assert list(table["prediction"]) == ["lesion", "negative", None] or table["prediction"].isna().iloc[2]
    assert list(table["probability"][:2]) == [0.8, 0.3]
    assert list(table["job_status"]) == ["done", "done", "not run"]
    assert list(table["study_date"]) == ["2001-02-03"] * 3


def test_prediction_html_escapes_and_shows_provenance():
    html = prediction_html(
        {
            "label": "<b>x</b>",
            "probability": 0.25,
            "model_id": "m1",
            "model_checksum": "ab" * 32,
            "library_version": "9.9",
            "created_at": "now",
            "params": {"num_samples": 5},
        }
    )
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "25.0 %" in html and "abababab" in html and "num_samples=5" in html
    assert "No prediction" in prediction_html(None)


@pytest.fixture(scope="module")
def panel(demo_store, local_dask_client):
    return CatalogPanel(demo_store, client=local_dask_client)


@pytest.fixture(scope="module")
def brain_uid(demo_store):
    studies = Catalog(demo_store).studies()
    brain = studies["shape"].map(lambda shape: tuple(shape) == (256, 256, 20)) & (studies["study_label"] == "no_lesion")
    return studies.loc[brain, "study_uid"].item()  # the real series (the demo also has a copy with a lesion)


def test_every_sample_study_is_listed_with_its_prediction(panel, demo_store):
    results = Catalog(demo_store).results()
    assert len(panel.table.rows) == len(Catalog(demo_store).studies()) == 7
    for row in panel.table.rows:
        expected = results[results["study_uid"] == row["study_uid"]].iloc[0]
        assert row["prediction"] == expected["label"]
        assert row["probability"] == pytest.approx(expected["probability"])
        assert row["job_status"] == "done"
    assert "7 of 7" in panel.count.value


def test_filters_and_sorting(panel):
    panel.modality.value = "CT"
    assert [row["modality"] for row in panel.table.rows] == ["CT", "CT"]  # CT_small and its lesion copy
    panel.modality.value = "All"
    panel.table.sort_by, panel.table.ascending = "probability", False
    probabilities = [row["probability"] for row in panel.table.rows]
    assert probabilities == sorted(probabilities, reverse=True)
    panel.search.value = "no study matches this"
    assert panel.table.rows == [] and "0 of 7" in panel.count.value
    panel.search.value = ""


def test_the_review_column_and_filter_show_the_predictions_awaiting_review(panel):
    assert {row["review_status"] for row in panel.table.rows} == {"needs review"}
    assert "needs review" in panel.review_status.options and "rejected" in panel.review_status.options
    panel.review_status.value = "rejected"
    assert panel.table.rows == [] and "0 of 7" in panel.count.value
    panel.review_status.value = "needs review"
    assert len(panel.table.rows) == 7
    panel.review_status.value = "All"


def test_an_opened_study_has_its_review_on_the_current_slice(panel, brain_uid):
    detail = panel.open_study(brain_uid)
    assert detail.review.study_uid == brain_uid and detail.review.viewer is detail.viewer
    assert "data-status='needs review'" in detail.review.status.value
    assert f"data-slice='{detail.viewer.coordinate['ijk'][2]}'" in detail.review.slice_info.value
    assert not detail.review.reject_button.disabled


def test_selecting_a_study_shows_heat_map_on_the_most_suspicious_slice(panel, demo_store, brain_uid):
    panel.table.selected = brain_uid  # what a row click does
    detail = panel.detail.children[0]
    assert detail.study_uid == brain_uid
    result = Catalog(demo_store).results(study_uid=brain_uid).iloc[0]
    assert HEATMAP_OVERLAY in [overlay["name"] for overlay in detail.viewer.overlays]
    assert detail.viewer.coordinate["ijk"][2] == result["most_suspicious_slice"]
    assert detail.viewer.volume.shape[:3] == (256, 256, 20)


def test_downloads_send_the_stored_deidentified_volume_and_report(panel, demo_store, brain_uid, tmp_path):
    detail = panel.open_study(brain_uid)
    by_label = {button.description: button for button in detail.downloads}
    message, data = by_label["Volume (de-identified NIfTI)"].payload()
    assert message["filename"].endswith(".nii.gz") and message["mime"] == "application/gzip"
    saved = tmp_path / message["filename"]
    saved.write_bytes(data)
    assert nib.load(saved).shape == (256, 256, 20)  # what the browser saves opens in any NIfTI reader
    reports = [label for label in by_label if label.startswith("Report ")]
    assert reports and all(label.endswith(".html") for label in reports)
    message, data = by_label[reports[0]].payload()
    assert message["mime"] == "text/html" and b"<html" in data.lower()


def test_a_click_segments_and_the_mask_is_listed_after_a_refresh(panel, demo_store, brain_uid):
    detail = panel.open_study(brain_uid)
    detail.segmenter.segment((128, 128, 10))
    assert detail.segmenter.wait(120) is not None, detail.segmenter.error
    panel.refresh()
    detail = panel.open_study(brain_uid)
    numbers = quantification_table(panel.segmentations[panel.segmentations["study_uid"] == brain_uid])
    assert len(numbers) >= 1 and numbers["volume_ml"].iloc[0] > 0
    assert any(overlay["name"].startswith("saved seg-") for overlay in detail.viewer.overlays)
    assert any(button.description.startswith("Mask seg-") for button in detail.downloads)


def test_the_table_shows_the_default_models_prediction_and_names_the_model():
    studies = pd.DataFrame({"study_uid": ["a", "b"], "study_date": [None, None], "volume_key": ["va", "vb"]})
    results = pd.DataFrame(
        {
            "study_uid": ["a", "a", "b"],
            "model_id": ["default-1", "newer-2", "newer-2"],
            "label": ["no_lesion", "lesion", "lesion"],
            "probability": [0.2, 0.9, 0.8],
            "created_at": pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-02"], utc=True),
        }
    )
    rows = study_table(studies, results, [], model_id="default-1").set_index("study_uid")
    assert rows.loc["a", "model_id"] == "default-1" and rows.loc["a", "prediction"] == "no_lesion"
    assert rows.loc["b", "model_id"] == "newer-2"  # no result of the default: the latest one, named
    latest = study_table(studies, results, []).set_index("study_uid")
    assert latest.loc["a", "model_id"] == "newer-2"
