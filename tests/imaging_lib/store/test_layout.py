"""Every key is built and parsed by one table: build -> parse round trips, and nothing else matches."""

from __future__ import annotations

import pytest

from imaging_lib.store import layout
from imaging_lib.store.objects import validate_key

UID = "2.25.123456789"
VALUES = {
    "study_uid": UID,
    "series_uid": "2.25.42",
    "sop_uid": "2.25.7",
    "model_id": "demo_lesion_cnn-12bbaba839c7",
    "seg_id": "seg-20260101T000000-abcd1234",
    "report_name": "study_report",
    "extension": "pdf",
    "job_id": "batch-20260101T000000-abcd1234",
    "export_id": "export-20260101T000000-abcd1234",
    "name": "0" * 64,
    "version": "v000003-branch-1a2b3c4d",
    "mask_sha256": "ab" * 32,
    "promotion_id": "20260101T000000123456-abcd1234",
    "file_name": "model.pt",
    "trial_id": "trial-03",
    "epoch": "00012",
    "event_file": "events.out.tfevents.1767225600.host.123.0",
    "series_digest": "cd" * 32,
}


@pytest.mark.parametrize("pattern", layout.KEY_PATTERNS, ids=lambda p: p.kind)
def test_every_kind_of_key_round_trips(pattern):
    values = {name: VALUES[name] for name in pattern.fields}
    key = layout.build(pattern.kind, **values)
    assert validate_key(key) == key
    parsed = layout.parse(key)
    assert parsed is not None and parsed.kind == pattern.kind and parsed.fields == values
    assert key.startswith(layout.prefix(pattern.kind))
    assert layout.parse_as(pattern.kind, key) == parsed


def test_the_named_builders_agree_with_the_table():
    assert layout.raw_key(UID, "2.25.42", "2.25.7") == f"raw/{UID}/2.25.42/2.25.7.dcm"
    assert layout.volume_key(UID, "2.25.42") == f"volumes/{UID}/2.25.42.nii.gz"
    assert layout.study_record_key(UID) == f"records/studies/{UID}.json"
    assert layout.result_record_key(UID, "m") == f"records/results/{UID}/m.json"
    assert layout.report_key(UID, "study_report", "html") == f"reports/{UID}/study_report.html"
    assert layout.report_record_key("cohort", "cohort_report") == "records/reports/cohort/cohort_report.json"
    assert layout.export_record_key(UID, "export-1") == f"records/exports/{UID}/export-1.json"
    assert layout.parse(layout.explanation_key(UID, "m")).kind == "explanation"
    assert layout.parse(layout.segmentation_key(UID, "s")).kind == "segmentation"
    assert layout.label_record_key(UID, "v000001") == f"records/labels/{UID}/v000001.json"
    assert layout.label_mask_key(UID, "ab" * 32) == f"labels/{UID}/{'ab' * 32}.nii.gz"
    assert layout.model_record_key("m-1") == "records/models/m-1.json"
    assert layout.model_file_key("m-1", layout.MODEL_SPEC_FILE) == "models/m-1/model.json"
    assert layout.promotion_record_key("p") == "records/promotions/p.json"
    assert layout.cancellation_record_key("j") == "records/cancellations/j.json"
    assert layout.checkpoint_key("j", "trial-00", 7) == "training/j/trial-00/checkpoint-00007.pt"
    assert layout.trial_metrics_key("j", "trial-00") == "training/j/trial-00/metrics.json"
    assert layout.trial_prefix("j", "trial-00") == "training/j/trial-00/"
    assert layout.parse(layout.tensorboard_key("j", "t", "events.out.tfevents.1")).kind == "tensorboard_events"


def test_prefixes_narrow_by_leading_fields():
    assert layout.prefix("result_record") == layout.RESULT_RECORDS == "records/results/"
    assert layout.prefix("result_record", study_uid=UID) == f"records/results/{UID}/"
    assert layout.raw_prefix(UID, "2.25.42") == f"raw/{UID}/2.25.42/"
    assert layout.report_prefix("cohort") == "reports/cohort/"
    with pytest.raises(ValueError, match="leading fields"):
        layout.prefix("result_record", model_id="m")
    with pytest.raises(ValueError, match="one non-empty key segment"):
        layout.prefix("result_record", study_uid="a/b")


@pytest.mark.parametrize("value", ["", "a/b"])
def test_a_field_must_be_one_key_segment(value):
    with pytest.raises(ValueError, match="one non-empty key segment"):
        layout.study_record_key(value)


@pytest.mark.parametrize(
    "key",
    ["", "records/studies/", "records/studies/a/b.json", "records/studies/a.txt", "volumes/a.nii.gz", "config/deid"],
)
def test_keys_outside_the_layout_do_not_parse(key):
    assert layout.parse(key) is None
    with pytest.raises(ValueError, match="is not a study_record key"):
        layout.parse_as("study_record", key)


def test_missing_fields_are_named():
    with pytest.raises(ValueError, match="needs series_uid"):
        layout.build("volume", study_uid=UID)
