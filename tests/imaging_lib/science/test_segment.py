"""Saving a segmentation, and the grow-quantify-save chain a click in the viewer runs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from imaging_lib.science.quantify import quantify
from imaging_lib.science.region_growing import grow_region
from imaging_lib.science.segment import save_segmentation, segment_and_quantify
from imaging_lib.store.layout import segmentation_key, segmentation_record_key
from imaging_lib.store.objects import Store


def test_save_segmentation_writes_mask_and_record(store, hard_phantom):
    # ``store`` (tests/conftest.py): a local folder, then a bucket on the GCS emulator
    seed = hard_phantom.seed_ijk(0)
    mask = grow_region(hard_phantom.volume, seed)
    quantification = quantify(hard_phantom.volume, mask)
    record = save_segmentation(store, "study-1", mask, quantification, seed, mask.metadata["parameters"])
    seg_id = record["seg_id"]
    assert record["mask_key"] == segmentation_key("study-1", seg_id)
    assert record["record_key"] == segmentation_record_key("study-1", seg_id)
    stored = store.read_json(record["record_key"])
    assert stored == json.loads(json.dumps({k: v for k, v in record.items() if k != "record_key"}))
    assert stored["quantification"]["volume_ml"] == quantification["volume_ml"]
    assert stored["seed_ijk"] == list(seed)
    assert stored["provenance"]["parameters"]["tolerance_mode"] == "std"
    provenance = stored["provenance"]
    assert provenance["library_version"] and provenance["created_at"] and provenance["parameters"]
    written = store.read_volume(record["mask_key"])
    assert np.array_equal(written.array, mask.array)
    assert np.allclose(written.affine, mask.affine)
    again = save_segmentation(store, "study-1", mask, quantification, seed, {})
    assert again["seg_id"] != seg_id  # a second save never overwrites the first


def test_segment_and_quantify_chains_grow_quantify_and_save(tmp_path, hard_phantom):
    store = Store(tmp_path / "store")
    seed = hard_phantom.seed_ijk(1)
    outcome = segment_and_quantify(hard_phantom.volume, seed, {"tolerance": 3.0}, store, "study-2")
    assert outcome["quantification"] == quantify(hard_phantom.volume, outcome["mask"])
    assert outcome["mask"].metadata["parameters"]["tolerance"] == 3.0
    assert store.read_json(outcome["record"]["record_key"])["seed_ijk"] == list(seed)
    assert segment_and_quantify(hard_phantom.volume, seed)["record"] is None
    with pytest.raises(ValueError, match="study_uid"):
        segment_and_quantify(hard_phantom.volume, seed, store=store)
