"""ReviewPanel: the study browser's review, driven as its buttons are, on the real brain MR and its prediction."""

from __future__ import annotations

import pytest

from imaging_lib.science.segment import grow_region
from imaging_lib.store import layout, review
from imaging_lib.store.catalog import Catalog
from imaging_lib.store.labels import label_history, latest_label, read_label_mask, save_label_version
from imaging_lib.store.objects import Store
from support.reviewed import copy_store, predicted_brain_store
from widgets.papaya import PapayaViewer
from widgets.review_panel import ReviewPanel, history_html, review_counts_html


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return predicted_brain_store(tmp_path_factory.mktemp("review-panel"))


@pytest.fixture
def study(source, tmp_path):
    store, uid = source
    store = copy_store(store, Store(tmp_path / "store"))
    volume = store.read_volume(Catalog(store).studies()["volume_key"].iloc[0])
    return store, uid, volume


def _message(panel: ReviewPanel) -> str:
    return panel.message.value


def test_counts_are_drawn_as_tiles_with_their_values():
    page = review_counts_html({"studies": 4, "predicted": 3, "needs review": 2, "accepted": 0, "rejected": 1})
    for name, value in (("studies", 4), ("predicted", 3), ("needs review", 2), ("accepted", 0), ("rejected", 1)):
        assert f"data-name='{name}' data-value='{value}'" in page
    assert "Needing review" in page and "#c62828" in page


def test_history_is_escaped_newest_first_and_names_each_version_and_hash():
    history = [
        {"version": "v000001", "content_sha256": "a" * 64, "comment": "<script>x</script>", "provenance": {}},
        {"version": "v000002", "content_sha256": "b" * 64, "comment": "", "reverted_from": "v000001"},
    ]
    page = history_html(history)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert page.index("data-version='v000002'") < page.index("data-version='v000001'")
    assert f"data-content-sha256='{'a' * 64}'" in page and "← v000001" in page


def test_the_panels_buttons_save_versions_by_the_dashboard_user(study):
    store, uid, volume = study
    viewer = PapayaViewer(volume)
    saved: list[dict] = []
    panel = ReviewPanel(store, uid, viewer=viewer, user="reviewer-b", on_saved=saved.append)
    assert "data-status='needs review'" in panel.status.value and not panel.reject_button.disabled

    panel.comment.value = "ring artefact, no lesion"
    panel.reject_button.click()
    first = latest_label(store, uid)
    assert first["decision"]["verdict"] == "rejected" and first["decision"]["comment"] == "ring artefact, no lesion"
    assert first["provenance"]["created_by"] == "reviewer-b" and first["tool"] == "review-panel"
    assert "Saved v000001 by reviewer-b" in _message(panel) and panel.comment.value == ""
    assert [record["version"] for record in saved] == ["v000001"]
    assert "data-status='rejected'" in panel.status.value
    assert Catalog(store).studies()["review_status"].tolist() == ["rejected"]

    viewer.goto((128, 128, 7))
    assert "data-slice='7'" in panel.slice_info.value
    panel.slice_label.value = "no_lesion"
    panel.save_slice_button.click()
    assert latest_label(store, uid)["slice_labels"] == {"7": "no_lesion"}
    assert "no lesion" in panel.slice_info.value
    panel.slice_label.value = "unlabelled"
    panel.save_slice_button.click()
    assert latest_label(store, uid)["slice_labels"] == {}

    panel.revert_choice.value = "v000002"
    panel.revert_button.click()
    restored = latest_label(store, uid)
    assert restored["version"] == "v000004" and restored["slice_labels"] == {"7": "no_lesion"}
    assert "data-version='v000004'" in panel.history_table.value
    assert [row["version"] for row in label_history(store, uid)] == ["v000001", "v000002", "v000003", "v000004"]


def test_marking_a_saved_segmentation_reviewed_stores_it_as_the_label_mask(study):
    store, uid, volume = study
    mask = grow_region(volume, (128, 128, 10), tolerance=1.0, smoothing_sigma_mm=1.0)
    key = layout.segmentation_key(uid, "seg-test")
    store.write_volume(key, mask)
    panel = ReviewPanel(store, uid, masks={"saved seg-test": key}, user="reviewer-c")
    assert panel.mask_choice.options == (("saved seg-test", key),)
    panel.mark_reviewed_button.click()
    label = latest_label(store, uid)
    assert label["mask"]["reviewed"] is True and label["mask"]["source"] == key
    assert (read_label_mask(store, label).array == mask.array).all()
    assert dict(panel.mask_choice.options)["label v000001"] == label["mask"]["key"]
    assert panel.mark_mask_reviewed("segmentations/other/seg-x.nii.gz") is None
    assert "not a mask shown here" in _message(panel) and latest_label(store, uid)["version"] == "v000001"


def test_a_save_on_a_version_someone_replaced_is_kept_as_a_branch_and_the_panel_shows_the_latest(study):
    store, uid, _volume = study
    panel = ReviewPanel(store, uid, user="reviewer-d")  # shows no version yet
    save_label_version(store, uid, parent=None, study_label="lesion", created_by="reviewer-e")
    panel.study_label.value = "no_lesion"
    panel.save_study_button.click()
    assert "v000001 was saved meanwhile" in _message(panel) and "data-state='error'" in _message(panel)
    assert panel.latest["version"] == "v000001" and panel.study_label.value == "lesion"
    (branch,) = [row for row in panel.history if row["branch"]]
    assert branch["study_label"] == "no_lesion" and branch["provenance"]["created_by"] == "reviewer-d"
    assert "(branch)" in panel.history_table.value


def test_refused_edits_say_why_and_save_nothing(study, monkeypatch):
    store, uid, volume = study
    monkeypatch.setenv("IMAGING_USER", "notebook-user")
    viewer = PapayaViewer(volume)
    panel = ReviewPanel(store, uid, viewer=viewer)
    assert panel.who() == "notebook-user"
    viewer.goto((10, 10, 3))
    panel.label_slice("lesion")
    panel.study_label.value = "no_lesion"
    panel.save_study_button.click()
    assert "slice 3 is labelled lesion" in _message(panel) and "data-state='error'" in _message(panel)
    assert latest_label(store, uid)["version"] == "v000001"
    assert panel.set_study_label(None) is None and panel.revert_to(None) is None
    assert len(label_history(store, uid)) == 1 and review.is_accepted(latest_label(store, uid)) is False
