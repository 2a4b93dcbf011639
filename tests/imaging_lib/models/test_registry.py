"""The model registry in the store: registered files and records, pinned loading, promotion and the default."""

from __future__ import annotations

import json

import pytest

from imaging_lib.errors import InvalidModelSpec, MissingRecord, ModelChecksumMismatch, PermissionDenied
from imaging_lib.identity import identity_for
from imaging_lib.models import DEMO_MODEL_URI, clear_model_cache, load_model
from imaging_lib.models.registry import (
    default_model,
    ensure_default_model,
    load_registered_model,
    models_table,
    promote,
    promotions,
    read_model_record,
    register_shipped_model,
    registered_models,
    resolve_model,
)
from imaging_lib.store import layout


def test_the_shipped_model_registers_into_the_store_and_loads_from_it_pinned(store):
    record = register_shipped_model(store, created_by="ada")
    shipped = load_model(DEMO_MODEL_URI)
    assert record["model_id"] == shipped.model_id and record["model_checksum"] == shipped.checksum
    assert store.exists(layout.model_file_key(shipped.model_id, "demo_lesion_cnn.pt"))
    loaded = load_registered_model(store, shipped.model_id)
    assert loaded.checksum == shipped.checksum and loaded.uri != DEMO_MODEL_URI
    assert loaded.spec.decision_rule == shipped.spec.decision_rule
    assert "Model card" in record["card"] and record["provenance"]["created_by"] == "ada"
    assert register_shipped_model(store)["provenance"] == record["provenance"]  # once, however often asked
    assert list(registered_models(store)) == [shipped.model_id]


def test_weights_changed_in_the_store_are_refused(store):
    model_id = register_shipped_model(store)["model_id"]
    key = layout.model_file_key(model_id, "demo_lesion_cnn.pt")
    data = bytearray(store.read_bytes(key))
    data[-10] ^= 0xFF
    store.write_bytes(key, bytes(data))
    clear_model_cache()
    with pytest.raises(ModelChecksumMismatch, match="SHA-256"):
        load_registered_model(store, model_id)
    with pytest.raises(ModelChecksumMismatch):
        promote(store, model_id)
    assert promotions(store) == []


def test_a_spec_rewritten_to_other_weights_is_refused_by_the_pinned_checksum(store):
    model_id = register_shipped_model(store)["model_id"]
    spec_key = layout.model_file_key(model_id, "model.json")
    spec = store.read_json(spec_key)
    pinned = load_registered_model(store, model_id)
    store.write_json(spec_key, {**spec, "decision": {**spec["decision"], "threshold": 0.01}})
    assert load_registered_model(store, model_id) is pinned  # this process keeps the verified model
    clear_model_cache()
    with pytest.raises(ModelChecksumMismatch, match="no longer"):
        load_registered_model(store, model_id)
    clear_model_cache()
    store.write_json(spec_key, {**spec, "weights": "../../../escape.pt"})
    with pytest.raises(InvalidModelSpec, match="inside the spec's folder"):
        load_registered_model(store, model_id)


def test_the_record_cannot_point_the_loader_elsewhere(store):
    model_id = register_shipped_model(store)["model_id"]
    key = layout.model_record_key(model_id)
    record = store.read_json(key)
    store.write_json(key, {**record, "spec_key": "models/elsewhere/model.json", "weights_key": "x"})
    assert load_registered_model(store, model_id).model_id == model_id  # the layout's key, not the record's


def test_promotion_makes_the_default_and_keeps_the_history(store):
    assert default_model(store).uri == DEMO_MODEL_URI and default_model(store).model_id is None
    first = ensure_default_model(store, identity=identity_for("ada", ["admin"]))
    assert (
        first.model_id == load_model(DEMO_MODEL_URI).model_id and first.promotion["provenance"]["created_by"] == "ada"
    )
    assert ensure_default_model(store) == first  # a store with a default is left alone
    again = promote(store, first.model_id, identity=identity_for("bob", ["admin"]), comment="again")
    assert [p["record_key"] for p in promotions(store)] == [again["record_key"], first.promotion["record_key"]]
    assert again["previous_model_id"] == first.model_id
    assert resolve_model(store).model_id == first.model_id and resolve_model(store).uri == first.uri
    table = models_table(store)
    assert list(table["model_id"]) == [first.model_id] and bool(table["default"][0])


def test_only_an_admin_may_promote(store):
    model_id = register_shipped_model(store)["model_id"]
    for refused in (identity_for("rita", ["researcher"]), identity_for("rolf", ["reviewer", "viewer"])):
        with pytest.raises(PermissionDenied, match="may not promote a model to the default: that needs the role admin"):
            promote(store, model_id, identity=refused)
    assert promotions(store) == []
    assert promote(store, model_id, identity=identity_for("alma", ["admin"]))["provenance"]["created_by"] == "alma"


def test_unknown_models_are_named(store):
    with pytest.raises(MissingRecord, match="no model 'nope-000000000000' is registered"):
        read_model_record(store, "nope-000000000000")
    with pytest.raises(MissingRecord, match="not a model id"):
        read_model_record(store, "../x")
    with pytest.raises(MissingRecord):
        promote(store, "nope-000000000000")


def test_specs_in_the_registry_are_canonical_json(store):
    model_id = register_shipped_model(store)["model_id"]
    spec = json.loads(store.read_bytes(layout.model_file_key(model_id, "model.json")))
    assert spec["weights"] == "demo_lesion_cnn.pt" and spec["decision"]["aggregate"] == "top_k_mean"
