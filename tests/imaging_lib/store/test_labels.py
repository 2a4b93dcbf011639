"""Versioned labels on the real brain MR series with a real prediction, on a local store and the GCS emulator.

Every save is a new record; a stale parent is refused and kept as a branch (two real
processes saving at once); masks of another grid are refused with nothing changed; masks
read back bit for bit and are checked against their hash.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from imaging_lib.errors import InvalidLabel, MaskGeometryMismatch, MissingRecord, StaleLabelVersion
from imaging_lib.limits import MAX_LABEL_COMMENT_CHARS
from imaging_lib.store import label_records, layout, records, review
from imaging_lib.store.catalog import Catalog
from imaging_lib.store.labels import (
    editable_mask,
    label_history,
    latest_label,
    read_label_mask,
    revert,
    save_label_version,
)
from imaging_lib.store.masks import apply_voxel_diff, mask_sha256
from imaging_lib.store.objects import Store
from imaging_lib.volume import Volume
from support.reviewed import copy_store, predicted_brain_store


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return predicted_brain_store(tmp_path_factory.mktemp("labels-source"))


@pytest.fixture
def study(source, tmp_path):
    """(store, study_uid): a fresh local copy of the predicted brain store."""
    store, uid = source
    return copy_store(store, Store(tmp_path / "store")), uid


@pytest.fixture
def any_study(source, store):
    """(store, study_uid) on a local folder, then on a bucket of the GCS emulator."""
    return copy_store(source[0], store), source[1]


def _snapshot(store: Store) -> dict[str, bytes]:
    return {key: store.read_bytes(key) for key in store.list()}


def _lesion_mask(store: Store, uid: str) -> Volume:
    study = records.read_record(store, layout.study_record_key(uid))
    volume = store.read_volume(study["volume_key"])
    array = np.zeros(volume.shape[:3], dtype=np.uint8)
    array[100:140, 90:130, 8:12] = 1
    return Volume(array, volume.affine)


def test_each_save_is_a_new_version_naming_who_when_parent_tool_and_the_result_judged(any_study, monkeypatch):
    store, uid = any_study
    monkeypatch.setenv("IMAGING_USER", "reviewer-a")
    result = Catalog(store).latest_results(uid)[uid]
    first = save_label_version(
        store, uid, parent=None, decision="rejected", comment="motion artefact", tool="review-panel"
    )
    first_bytes = store.read_bytes(first["record_key"])
    second = save_label_version(store, uid, parent=first["version"], slice_labels={3: "no_lesion"}, tool="python")

    history = label_history(store, uid)
    assert [v["version"] for v in history] == ["v000001", "v000002"]
    assert [v["parent"] for v in history] == [None, "v000001"]
    assert [v["tool"] for v in history] == ["review-panel", "python"]
    assert {v["provenance"]["created_by"] for v in history} == {"reviewer-a"}
    assert history[0]["provenance"]["created_at"] <= history[1]["provenance"]["created_at"]
    decision = history[0]["decision"]
    assert decision["verdict"] == "rejected" and decision["comment"] == "motion artefact"
    assert decision["result_key"] == result[0] and decision["model_checksum"] == result[1]["model_checksum"]
    assert decision["predicted_label"] == result[1]["label"]
    # a version is a whole snapshot: the second keeps the first's decision and study label
    assert second["decision"] == decision and second["study_label"] == first["study_label"]
    assert second["slice_labels"] == {"3": "no_lesion"}
    assert latest_label(store, uid)["version"] == "v000002"
    assert store.read_bytes(first["record_key"]) == first_bytes  # never overwritten
    assert records.read_record(store, second["record_key"]) == {k: v for k, v in second.items() if k != "record_key"}


def test_accepting_takes_the_predicted_label_rejecting_the_other_and_a_contradiction_is_refused(study):
    store, uid = study
    predicted = Catalog(store).latest_results(uid)[uid][1]["label"]
    other = review.LABELS[1 - review.LABELS.index(predicted)]
    accepted = save_label_version(store, uid, parent=None, decision="accepted")
    assert accepted["study_label"] == predicted
    rejected = save_label_version(store, uid, parent="v000001", decision="rejected", comment="no lesion visible")
    assert rejected["study_label"] == other
    before = _snapshot(store)
    with pytest.raises(InvalidLabel, match="contradicts"):
        save_label_version(store, uid, parent="v000002", decision="accepted", study_label=other)
    assert _snapshot(store) == before
    # relabelling against the verdict reopens the review of the prediction
    relabelled = save_label_version(store, uid, parent="v000002", study_label=predicted)
    assert relabelled["decision"] is None
    statuses = Catalog(store).studies().set_index("study_uid")["review_status"]
    assert statuses[uid] == review.NEEDS_REVIEW


def test_a_mask_reads_back_bit_for_bit_and_each_content_is_stored_once(any_study):
    store, uid = any_study
    mask = _lesion_mask(store, uid)
    first = save_label_version(store, uid, parent=None, mask=mask, study_label="lesion", tool="brush")
    back = read_label_mask(store, first)
    assert back.array.dtype == np.uint8 and np.array_equal(back.array, mask.array)
    assert np.allclose(back.affine, mask.affine)
    assert first["mask"]["sha256"] == mask_sha256(mask.array) and first["mask"]["reviewed"] is False
    assert first["mask"]["voxel_count"] == int(mask.array.sum())
    assert review.is_accepted(first) is False  # an unchecked mask is not training material yet
    second = save_label_version(store, uid, parent="v000001", mask_reviewed=True, tool="review-panel")
    assert second["mask"] == {**first["mask"], "reviewed": True} and review.is_accepted(second)
    third = save_label_version(store, uid, parent="v000002", mask=mask.array.copy(), mask_reviewed=True)
    assert third["mask"]["key"] == first["mask"]["key"]
    assert len(store.list(layout.prefix("label_mask", study_uid=uid))) == 1


def test_a_voxel_diff_on_the_editable_mask_saves_as_a_new_version_and_its_undo_restores_it(study):
    store, uid = study
    blank = editable_mask(store, uid)
    assert blank.shape == (256, 256, 20) and not blank.any() and blank.flags.writeable
    first = save_label_version(store, uid, parent=None, mask=_lesion_mask(store, uid), study_label="lesion")
    mask = editable_mask(store, uid)
    before = mask.copy()
    indices = np.ravel_multi_index(([10, 11, 200], [20, 20, 50], [0, 0, 19]), mask.shape, order="F")
    previous = apply_voxel_diff(mask, indices, 2)
    saved = save_label_version(store, uid, parent=first["version"], mask=mask, tool="brush")
    assert np.array_equal(read_label_mask(store, saved).array, mask)
    assert mask[10, 20, 0] == mask[11, 20, 0] == mask[200, 50, 19] == 2
    apply_voxel_diff(mask, indices, previous)
    assert np.array_equal(mask, before)
    undone = save_label_version(store, uid, parent=saved["version"], mask=mask, tool="brush")
    assert undone["mask"]["sha256"] == first["mask"]["sha256"]


def test_revert_saves_a_new_version_equal_to_an_old_one(any_study):
    store, uid = any_study
    first = save_label_version(store, uid, parent=None, study_label="lesion", slice_labels={4: "lesion"})
    save_label_version(store, uid, parent="v000001", study_label="no_lesion", slice_labels={4: None})
    restored = revert(store, uid, "v000001", parent="v000002", comment="back to the first reading")
    assert restored["version"] == "v000003" and restored["reverted_from"] == "v000001"
    assert restored["content_sha256"] == first["content_sha256"]
    assert {name: restored[name] for name in label_records.LABEL_CONTENT_FIELDS} == {
        name: first[name] for name in label_records.LABEL_CONTENT_FIELDS
    }
    assert len(label_history(store, uid)) == 3


def test_a_stale_parent_is_refused_naming_the_latest_and_the_edit_is_kept_as_a_branch(any_study):
    store, uid = any_study
    save_label_version(store, uid, parent=None, study_label="lesion")
    save_label_version(store, uid, parent="v000001", comment="reviewer A", study_label="no_lesion")
    with pytest.raises(StaleLabelVersion) as stale:
        save_label_version(store, uid, parent="v000001", comment="reviewer B", slice_labels={7: "lesion"})
    assert stale.value.latest == "v000002" and stale.value.parent == "v000001"
    assert "v000002" in str(stale.value) and stale.value.branch in str(stale.value)
    history = label_history(store, uid)
    branch = next(v for v in history if v["branch"])
    assert branch["version"] == stale.value.branch and branch["comment"] == "reviewer B"
    assert branch["slice_labels"] == {"7": "lesion"} and branch["parent"] == "v000001"
    assert latest_label(store, uid)["version"] == "v000002"  # a branch never becomes the latest by itself
    adopted = revert(store, uid, branch["version"], parent="v000002", comment="B's reading wins")
    assert adopted["version"] == "v000003" and adopted["slice_labels"] == {"7": "lesion"}
    with pytest.raises(StaleLabelVersion):
        save_label_version(store, uid, parent=None, study_label="lesion")  # a first save on a labelled study


SAVER = """
import json, sys
from imaging_lib.errors import StaleLabelVersion
from imaging_lib.store.labels import save_label_version
from imaging_lib.store.objects import Store
store, uid, name = Store(sys.argv[1]), sys.argv[2], sys.argv[3]
store.list()  # warm: the race is the save, not the start-up
print("ready", flush=True)
sys.stdin.readline()
try:
    record = save_label_version(store, uid, parent="v000001", comment=name, study_label="lesion")
    print(json.dumps({"saved": record["version"]}))
except StaleLabelVersion as exc:
    print(json.dumps({"stale": exc.latest, "branch": exc.branch}))
"""


def _check_one_winner(store: Store, uid: str, outcomes: list[dict], names: list[str]) -> None:
    saved = [o["saved"] for o in outcomes if "saved" in o]
    assert saved == ["v000002"], outcomes
    assert all(o["stale"] == "v000002" for o in outcomes if "saved" not in o), outcomes
    history = label_history(store, uid)
    assert [v["version"] for v in review.main_line(history)] == ["v000001", "v000002"]
    branches = {v["version"]: v["comment"] for v in history if v["branch"]}
    assert sorted(branches) == sorted(o["branch"] for o in outcomes if "branch" in o)
    assert sorted([*branches.values(), latest_label(store, uid)["comment"]]) == sorted(names)  # no edit lost


def test_two_reviewers_saving_at_once_in_two_processes_one_wins_the_other_is_kept(study):
    store, uid = study
    save_label_version(store, uid, parent=None, study_label="no_lesion")
    savers = [
        subprocess.Popen(
            [sys.executable, "-c", SAVER, store.url, uid, name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=os.environ.copy(),
            text=True,
        )
        for name in ("reviewer A", "reviewer B")
    ]
    for saver in savers:  # both are up, then both are told to save at once
        assert saver.stdout.readline().strip() == "ready"
    for saver in savers:
        saver.stdin.write("go\n")
        saver.stdin.flush()
    outcomes = [json.loads(saver.communicate(timeout=120)[0].strip().splitlines()[-1]) for saver in savers]
    _check_one_winner(store, uid, outcomes, ["reviewer A", "reviewer B"])


def test_eight_savers_racing_on_threads_leave_one_version_and_seven_branches(study):
    store, uid = study
    save_label_version(store, uid, parent=None, study_label="no_lesion")
    names = [f"reviewer {n}" for n in range(8)]
    outcomes: list[dict] = []
    barrier = threading.Barrier(len(names))

    def save(name: str) -> None:
        barrier.wait()
        try:
            record = save_label_version(store, uid, parent="v000001", comment=name, study_label="lesion")
            outcomes.append({"saved": record["version"]})
        except StaleLabelVersion as exc:
            outcomes.append({"stale": exc.latest, "branch": exc.branch})

    threads = [threading.Thread(target=save, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _check_one_winner(store, uid, outcomes, names)


def test_a_mask_of_another_shape_affine_or_values_is_refused_and_nothing_saved_changes(any_study):
    store, uid = any_study
    good = _lesion_mask(store, uid)
    save_label_version(store, uid, parent=None, mask=good, study_label="lesion")
    before = _snapshot(store)
    shifted = good.affine.copy()
    shifted[0, 3] += 0.5
    halves = good.array.astype(np.float32) * 0.5
    bad_masks = {
        "shape": good.array[:, :, :19],
        "affine": Volume(good.array, shifted),
        "4D": good.array[..., None],
        "values": good.array.astype(np.int16) * 300,
        "fractions": halves,
        "NaN": np.full(good.shape, np.nan, dtype=np.float32),
    }
    for what, mask in bad_masks.items():
        with pytest.raises(MaskGeometryMismatch) as refused:
            save_label_version(store, uid, parent="v000001", mask=mask, study_label="lesion")
        assert uid in str(refused.value), what
    assert _snapshot(store) == before
    assert latest_label(store, uid)["version"] == "v000001"


def test_bad_input_gets_a_typed_error_and_writes_nothing(study):
    store, uid = study
    save_label_version(store, uid, parent=None, study_label="lesion", slice_labels={0: "lesion"})
    before = _snapshot(store)
    refused = [
        (MissingRecord, "2.25.404", {"study_label": "lesion"}),
        (InvalidLabel, "../escape", {"study_label": "lesion"}),
        (InvalidLabel, uid, {"study_label": "tumour"}),
        (InvalidLabel, uid, {"slice_labels": {20: "lesion"}}),
        (InvalidLabel, uid, {"slice_labels": {-1: "lesion"}}),
        (InvalidLabel, uid, {"slice_labels": {2: "maybe"}}),
        (InvalidLabel, uid, {"parent": "v000009", "study_label": "lesion"}),
        (InvalidLabel, uid, {"decision": "perhaps"}),
        (InvalidLabel, uid, {"decision": "accepted", "result_key": "records/results/2.25.1/m.json"}),
        (InvalidLabel, uid, {"mask_reviewed": True}),
        (InvalidLabel, uid, {"comment": "x" * (MAX_LABEL_COMMENT_CHARS + 1)}),
        (InvalidLabel, uid, {"study_label": "no_lesion"}),  # slice 0 says lesion
        (InvalidLabel, uid, {"mask_source": "../segmentations/x", "study_label": "lesion"}),
    ]
    for error, study_uid, changes in refused:
        with pytest.raises(error):
            save_label_version(store, study_uid, **{"parent": "v000001", **changes})
    with pytest.raises(InvalidLabel, match="does not exist"):
        revert(store, uid, "v000007", parent="v000001")
    assert _snapshot(store) == before


def test_a_decision_needs_a_prediction(tmp_path):
    from imaging_lib import sample_data
    from imaging_lib.ingestion.batch import ingest

    store = Store(tmp_path / "store")
    uid = ingest([sample_data.pydicom_file("CT_small.dcm")], store, progress=False).ingested[0]["study_uid"]
    with pytest.raises(InvalidLabel, match="no prediction"):
        save_label_version(store, uid, parent=None, decision="accepted")
    assert save_label_version(store, uid, parent=None, study_label="no_lesion")["version"] == "v000001"
    assert Catalog(store).studies()["review_status"].tolist() == [review.LABELLED]


def test_a_changed_mask_object_is_detected_when_read(study):
    store, uid = study
    saved = save_label_version(store, uid, parent=None, mask=_lesion_mask(store, uid), study_label="lesion")
    tampered = Volume(np.zeros((256, 256, 20), dtype=np.uint8), _lesion_mask(store, uid).affine)
    store.write_volume(saved["mask"]["key"], tampered)
    with pytest.raises(InvalidLabel, match="does not match its SHA-256"):
        read_label_mask(store, saved)
    with pytest.raises(InvalidLabel):
        revert(store, uid, "v000001", parent="v000001")
