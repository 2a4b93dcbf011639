"""The split is by patient: every slice of a patient's studies lands on one side, on every seed."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from imaging_lib.training.split import SPLITS, split_by_group


def _entries(groups: list[tuple[int, int, bool]]) -> list[dict]:
    """``(patient, studies, lesion)`` -> manifest-like entries."""
    entries = []
    for patient, count, lesion in groups:
        for index in range(count):
            entries.append(
                {
                    "study_uid": f"2.25.{patient}{index:03d}",
                    "split_group": f"ANON-{patient}",
                    "study_label": "lesion" if lesion and index == 0 else "no_lesion",
                }
            )
    return entries


@settings(max_examples=200, deadline=None)
@given(
    groups=st.lists(
        st.tuples(st.integers(0, 10_000), st.integers(1, 4), st.booleans()),
        min_size=1,
        max_size=30,
        unique_by=lambda g: g[0],
    ),
    validation=st.floats(0.05, 0.5),
    test=st.floats(0.0, 0.5),
    seed=st.integers(0, 2**31),
)
def test_every_study_goes_to_one_split_and_a_patient_never_to_two(groups, validation, test, seed):
    entries = _entries(groups)
    splits = split_by_group(entries, validation_fraction=validation, test_fraction=test, seed=seed)
    assigned = [uid for split in SPLITS for uid in splits[split]]
    assert sorted(assigned) == sorted(entry["study_uid"] for entry in entries)
    side = {uid: split for split in SPLITS for uid in splits[split]}
    for patient in {entry["split_group"] for entry in entries}:
        sides = {side[entry["study_uid"]] for entry in entries if entry["split_group"] == patient}
        assert len(sides) == 1, (patient, sides)
    assert split_by_group(entries, validation_fraction=validation, test_fraction=test, seed=seed) == splits


def test_each_split_gets_both_kinds_of_patient_when_there_are_enough():
    entries = _entries([(n, 2, n % 2 == 0) for n in range(12)])
    splits = split_by_group(entries, validation_fraction=0.25, test_fraction=0.25, seed=3)
    labels = {entry["study_uid"]: entry["split_group"] for entry in entries}
    for split in SPLITS:
        patients = {labels[uid] for uid in splits[split]}
        lesion_patients = {p for p in patients if int(p.split("-")[1]) % 2 == 0}
        assert lesion_patients and patients - lesion_patients, split
    other = split_by_group(entries, validation_fraction=0.25, test_fraction=0.25, seed=4)
    assert other != splits  # the seed matters


def test_no_test_split_when_asked_for_none_and_small_strata_train_first():
    entries = _entries([(1, 1, True), (2, 1, True), (3, 1, False), (4, 1, False)])
    splits = split_by_group(entries, validation_fraction=0.25, test_fraction=0.0, seed=0)
    assert splits["test"] == [] and len(splits["validation"]) == 2 and len(splits["train"]) == 2
