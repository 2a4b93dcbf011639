"""ReviewPanel: the study browser's review, driven as its buttons are, on the real brain MR and its prediction."""

from __future__ import annotations

import numpy as np
import pytest

from imaging_lib.science.segment import grow_region
from imaging_lib.store import layout, review
from imaging_lib.store.catalog import Catalog
from imaging_lib.store.labels import label_history, latest_label, read_label_mask, save_label_version
from imaging_lib.store.objects import Store
from imaging_lib.volume import Volume
from support.reviewed import copy_store, predicted_brain_store
from support.viewer_messages import Page
from widgets.papaya import PapayaViewer
from widgets.review_panel import LABEL_OVERLAY, ReviewPanel, history_html, review_counts_html


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


def _brush_disk(panel: ReviewPanel, page: Page, centre, radius: int, tool: str = "brush") -> np.ndarray:
    """Play a page's stroke on the edited label mask: a disk of voxels on one slice; return their flat indices."""
    viewer = panel.viewer
    shape = viewer.volume.shape[:3]
    i, j = np.ogrid[: shape[0], : shape[1]]
    disk = np.zeros(shape, bool)
    disk[..., centre[2]] = (i - centre[0]) ** 2 + (j - centre[1]) ** 2 <= radius**2
    current = viewer.mask(LABEL_OVERLAY)
    changed = np.flatnonzero((disk & (current != (tool == "brush"))).ravel(order="F"))
    layer = viewer.edit_overlay
    revision = viewer._overlay_layers[layer].revision
    assert page.patch(layer, revision, changed, int(tool == "brush"), tool=tool)[0][0]["type"] == "patched"
    return changed


def test_the_label_mask_is_edited_in_the_viewer_and_saved_as_a_version_naming_its_tools(study):
    store, uid, volume = study
    viewer = PapayaViewer(volume)
    page = Page(viewer)
    panel = ReviewPanel(store, uid, viewer=viewer, user="reviewer-f")
    assert panel.save_mask_button.disabled and not panel.edit_mask_button.disabled
    panel.edit_mask_button.click()
    assert viewer.edit_overlay == viewer._overlay_model(LABEL_OVERLAY).layer_id and not panel.save_mask_button.disabled
    assert "B brush" in _message(panel) and not viewer.mask(LABEL_OVERLAY).any(), "no label yet: an empty mask"
    assert panel.save_edited_mask() is None and "Nothing was drawn" in _message(panel)

    _brush_disk(panel, page, (120, 110, 10), 12)
    _brush_disk(panel, page, (120, 110, 10), 4, tool="eraser")
    panel.save_mask_button.click()
    saved = latest_label(store, uid)
    assert saved["tool"] == "brush+eraser" and saved["provenance"]["created_by"] == "reviewer-f"
    assert "Saved v000001 (brush+eraser) by reviewer-f" in _message(panel)
    np.testing.assert_array_equal(read_label_mask(store, saved).array, viewer.mask(LABEL_OVERLAY))
    assert viewer.edited_with(LABEL_OVERLAY) == []

    viewer.remove_overlay(LABEL_OVERLAY)  # a fresh viewer opens the saved mask and edits on from it
    panel.edit_mask_button.click()
    np.testing.assert_array_equal(viewer.mask(LABEL_OVERLAY), read_label_mask(store, saved).array)
    page = Page(viewer)
    _brush_disk(panel, page, (60, 60, 4), 5)
    save_label_version(store, uid, parent="v000001", study_label="lesion", created_by="reviewer-g")  # meanwhile
    assert panel.save_edited_mask() is None
    assert "v000002 was saved meanwhile" in _message(panel) and "kept as v000002-branch" in _message(panel)
    (branch,) = [row for row in panel.history if row["branch"]]
    np.testing.assert_array_equal(read_label_mask(store, branch).array, viewer.mask(LABEL_OVERLAY))
    assert branch["tool"] == "brush" and panel.latest["version"] == "v000002"


def test_a_mask_off_the_studys_grid_and_a_reviewer_without_the_right_are_refused_clearly(study, monkeypatch):
    store, uid, volume = study
    viewer = PapayaViewer(Volume(volume.array[:, :, :10], volume.affine))
    viewer.add_overlay(np.zeros((256, 256, 10), np.uint8), name=LABEL_OVERLAY, editable=True)
    panel = ReviewPanel(store, uid, viewer=viewer, user="reviewer-h")
    panel.edit_mask_button.click()
    _brush_disk(panel, Page(viewer), (100, 100, 5), 6)
    assert panel.save_edited_mask() is None
    assert "Not saved: mask shape (256, 256, 10) differs from the study&#x27;s (256, 256, 20)" in _message(panel)
    assert label_history(store, uid) == []

    for name, value in {"IMAGING_ACCESS": "team", "IMAGING_USER": "visitor", "IMAGING_USER_GROUPS": "viewer"}.items():
        monkeypatch.setenv(name, value)
    denied = ReviewPanel(store, uid, viewer=PapayaViewer(volume))
    assert denied.edit_mask_button.layout.display == "none" and denied.reject_button.layout.display == "none"
    denied.edit_mask()  # as if the hidden buttons' clicks were forged
    assert "cannot be edited: may not accept, reject or edit results and labels" in _message(denied)
    denied.reject_button.click()
    assert "Not saved: may not accept, reject" in _message(denied) and label_history(store, uid) == []
