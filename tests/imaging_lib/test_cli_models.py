"""``imaging-lab models``: the registry round trip (train, list, promote, show) and a batch with the new default."""

from __future__ import annotations

import json
import re

from imaging_lib.cli import main
from imaging_lib.jobs import run_batch
from imaging_lib.store import layout
from imaging_lib.store.catalog import Catalog
from imaging_lib.store.objects import Store
from support.training_store import build_training_store


def test_train_list_promote_show_then_the_batch_runs_the_new_default(local_dask_client, tmp_path, capsys):
    store = Store(tmp_path / "store")
    labels = build_training_store(store)
    scheduler = local_dask_client.scheduler.address
    settings = ["epochs=2", "input_size=[32,32]", "architecture_params.width=4", "max_slices_per_study=12"]
    code = main(
        ["models", "train", "--store", store.url, "--scheduler", scheduler, "--set", *settings,
         "--grid", "learning_rate=0.003,0.01"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    trained = re.findall(r"trial-0\d: finished, 2 epochs, best validation AUC [0-9.]+, model (\S+)", out)
    assert len(trained) == 2 and len(set(trained)) == 2
    best = re.search(r"-> imaging-lab models promote (\S+)", out).group(1)
    assert best in trained

    assert main(["models", "list", "--store", store.url]) == 0
    listing = capsys.readouterr().out
    assert all(f"  {model_id} " in listing for model_id in trained) and "default: the shipped model" in listing

    assert main(["models", "promote", best, "--store", store.url, "--comment", "best AUC"]) == 0
    assert f"default model: {best} (was the shipped model)" in capsys.readouterr().out
    assert main(["models", "list", "--store", store.url]) == 0
    assert f"* {best} " in capsys.readouterr().out

    assert main(["models", "show", best, "--store", store.url]) == 0
    assert f"# Model card: `{best}`" in capsys.readouterr().out
    assert main(["models", "show", best, "--store", store.url, "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["model_id"] == best and record["lineage"]["training_parameters"]["epochs"] == 2

    uids = sorted(labels)[:2]
    job = run_batch(uids, store, None, local_dask_client, params={"num_samples": 20}).wait(300)
    assert job.counts["done"] == 2
    results = Catalog(store).results()
    assert set(results["model_id"]) == {best}  # every result names the model that made it
    result = store.read_json(layout.result_record_key(uids[0], best))
    assert result["model_checksum"] == record["model_checksum"]
    assert result["model_uri"].endswith(layout.model_file_key(best, layout.MODEL_SPEC_FILE))
    assert result["decision"] == record["decision"]


def test_bad_parameters_and_unknown_models_are_clear_errors(tmp_path, capsys):
    store = Store(tmp_path / "store")
    assert main(["models", "train", "--store", store.url, "--set", "epochs=0"]) == 2
    assert "epochs must be an integer from 1" in capsys.readouterr().err
    assert main(["models", "train", "--store", store.url, "--set", "colour=red"]) == 2
    assert "unknown training parameter 'colour'" in capsys.readouterr().err
    assert main(["models", "promote", "nope-000000000000", "--store", store.url]) == 2
    assert "MissingRecord" in capsys.readouterr().err
