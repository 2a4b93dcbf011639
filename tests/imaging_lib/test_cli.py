"""The ``imaging-lab`` command line: ``labels export`` writes the training manifest."""

from __future__ import annotations

import json

from imaging_lib.cli import main
from imaging_lib.store.catalog import Catalog
from imaging_lib.store.labels import save_label_version
from support.reviewed import predicted_brain_store


def test_labels_export_writes_the_manifest_of_accepted_labels(tmp_path, capsys):
    store, uid = predicted_brain_store(tmp_path)
    saved = save_label_version(store, uid, parent=None, decision="accepted", comment="clear lesion")
    out = tmp_path / "manifest.json"
    assert main(["labels", "export", "--store", store.url, "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    expected = Catalog(store).training_set()
    assert {k: v for k, v in written.items() if k != "provenance"} == {
        k: v for k, v in expected.items() if k != "provenance"
    }
    assert [e["content_sha256"] for e in written["entries"]] == [saved["content_sha256"]]
    summary = capsys.readouterr().err
    assert f"1 studies ({saved['study_label']} 1)" in summary and written["manifest_sha256"] in summary

    assert main(["labels", "export", "--store", store.url]) == 0  # to standard output
    assert json.loads(capsys.readouterr().out)["manifest_sha256"] == written["manifest_sha256"]
