"""What label versions say: version names, history order, review status, acceptance and training entries."""

from __future__ import annotations

import pytest

from imaging_lib.store import layout, review

UID = "2.25.1"
RESULT_KEY = layout.result_record_key(UID, "demo-abc")
RESULT = {"model_checksum": "ab" * 32, "label": "lesion", "provenance": {"created_at": "2026-01-01T00:00:00.000+00:00"}}


def _version(name: str, **fields) -> tuple[str, dict]:
    return layout.label_record_key(UID, name), {"study_uid": UID, "version": name, **fields}


def test_version_names_parse_and_branches_are_unique():
    assert review.version_name(3) == "v000003" and review.parse_version("v000003") == (3, False)
    branch = review.branch_name(3)
    assert review.parse_version(branch) == (3, True) and branch != review.branch_name(3)
    for name in ("v3", "v000003-branch-XYZ", "latest", "v000003.json"):
        assert review.parse_version(name) is None


def test_history_comes_from_keys_in_order_and_ignores_what_is_not_a_version():
    found = dict(
        [
            _version("v000002", provenance={"created_at": "2"}),
            _version("v000002-branch-0123abcd", provenance={"created_at": "3"}),
            _version("v000001", provenance={"created_at": "1"}),
        ]
    )
    found[layout.label_record_key(UID, "notes")] = {"version": "v000009"}
    found[layout.label_record_key(UID, "v000003")] = {"study_uid": "2.25.other", "version": "v000001"}
    history = review.label_versions(found)[UID]
    assert [v["version"] for v in history] == ["v000001", "v000002", "v000002-branch-0123abcd", "v000003"]
    assert history[-1]["study_uid"] == UID  # the key says which study and version, not the body
    assert [v["version"] for v in review.main_line(history)] == ["v000001", "v000002", "v000003"]


def _decision(verdict: str, **changes) -> dict:
    decision = {"verdict": verdict, "result_key": RESULT_KEY, "model_checksum": RESULT["model_checksum"]}
    decision["result_created_at"] = RESULT["provenance"]["created_at"]
    return {"decision": {**decision, **changes}}


@pytest.mark.parametrize(
    ("latest", "result", "status"),
    [
        (None, None, review.NOT_REVIEWED),
        ({"study_label": "lesion"}, None, review.LABELLED),
        (None, (RESULT_KEY, RESULT), review.NEEDS_REVIEW),
        ({"study_label": "lesion"}, (RESULT_KEY, RESULT), review.NEEDS_REVIEW),
        (_decision("accepted"), (RESULT_KEY, RESULT), review.ACCEPTED),
        (_decision("rejected"), (RESULT_KEY, RESULT), review.REJECTED),
        (_decision("rejected", model_checksum="cd" * 32), (RESULT_KEY, RESULT), review.NEEDS_REVIEW),
        (_decision("rejected", result_created_at="2025"), (RESULT_KEY, RESULT), review.NEEDS_REVIEW),
        (
            _decision("rejected", result_key="records/results/2.25.1/old.json"),
            (RESULT_KEY, RESULT),
            review.NEEDS_REVIEW,
        ),
        (_decision("approved"), (RESULT_KEY, RESULT), review.NEEDS_REVIEW),
    ],
)
def test_review_status_needs_a_decision_on_the_latest_result_itself(latest, result, status):
    assert review.review_status(latest, result) == status


def test_counts_add_up():
    statuses = {"a": review.NEEDS_REVIEW, "b": review.REJECTED, "c": review.NOT_REVIEWED, "d": review.REJECTED}
    counts = review.review_counts(statuses)
    assert counts["studies"] == 4 and counts["predicted"] == 3 and counts[review.REJECTED] == 2
    assert counts[review.ACCEPTED] == 0 and counts[review.NOT_REVIEWED] == 1


def test_accepted_means_a_known_label_and_a_reviewed_mask_if_any():
    assert review.is_accepted({"study_label": "lesion"})
    assert not review.is_accepted({"study_label": None})
    assert not review.is_accepted({"study_label": "tumour"})
    assert not review.is_accepted({"study_label": "lesion", "mask": {"reviewed": False}})
    assert review.is_accepted({"study_label": "lesion", "mask": {"reviewed": True}, "slice_labels": {"3": "lesion"}})
    assert not review.is_accepted({"study_label": "lesion", "slice_labels": {"x": "lesion"}})


def test_training_entries_take_the_latest_accepted_version_and_name_what_they_skip():
    sha = "0" * 64
    mask = {"key": layout.label_mask_key(UID, sha), "sha256": sha, "reviewed": True}
    history = [
        {"study_uid": UID, "version": "v000001", "study_label": "lesion", "mask": mask},
        {"study_uid": UID, "version": "v000002", "study_label": "no_lesion", "mask": {**mask, "reviewed": False}},
    ]
    studies = {UID: {"patient_pseudonym": "ANON-1", "volume_key": "volumes/x.nii.gz", "shape": [2, 2, 2]}}
    entries, skipped = review.training_entries({UID: history}, studies, {mask["key"]})
    assert [(e["version"], e["latest_version"], e["study_label"]) for e in entries] == [
        ("v000001", "v000002", "lesion")
    ]
    assert entries[0]["split_group"] == "ANON-1" and skipped == []
    entries, skipped = review.training_entries({UID: history}, studies, set())
    assert entries == [] and "missing from the store" in skipped[0]["reason"]
    entries, skipped = review.training_entries({UID: history}, {}, {mask["key"]})
    assert entries == [] and skipped[0]["study_uid"] == UID and "study record is missing" in skipped[0]["reason"]
    forged = [{**history[0], "mask": {**mask, "sha256": "../x"}}]
    assert "does not match" in review.training_entries({UID: forged}, studies, {mask["key"]})[1][0]["reason"]
