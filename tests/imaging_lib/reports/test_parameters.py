"""Report templates come from package data, and wrong parameters fail before any kernel starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from imaging_lib import reports
from imaging_lib.errors import MissingRecord, ReportFailed
from imaging_lib.ingestion.batch import ingest
from imaging_lib.reports.parameters import TEMPLATES, TEMPLATES_DIR, check_parameters, resolve_template
from imaging_lib.sample_data import pydicom_file
from imaging_lib.store import layout
from imaging_lib.store.objects import Store

MISSING_STUDY = "2.25.404"


@pytest.fixture(scope="module")
def study_store(tmp_path_factory) -> tuple[Store, str]:
    """A store with one real study (CT_small, de-identified) and no prediction yet."""
    store = Store(tmp_path_factory.mktemp("parameters") / "store")
    (study_uid,) = ingest([pydicom_file("CT_small.dcm")], store, progress=False).studies
    return store, study_uid


def test_the_templates_are_package_data_beside_the_module():
    import imaging_lib.reports.parameters as module

    assert TEMPLATES_DIR.resolve() == Path(module.__file__).resolve().parent / "templates"
    for name, file_name in TEMPLATES.items():
        assert resolve_template(name) == TEMPLATES_DIR / file_name
        assert resolve_template(name).is_file()


def test_bad_parameters_fail_before_any_kernel(study_store):
    store, study_uid = study_store
    before = store.list("reports/")
    with pytest.raises(ReportFailed, match="study_uid"):
        reports.run_report("study", {}, store)
    with pytest.raises(ReportFailed, match="unknown parameter"):
        reports.run_report("study", {"study_uid": study_uid, "patient_name": "x"}, store)
    with pytest.raises(ReportFailed, match="format"):
        reports.run_report("study", {"study_uid": study_uid}, store, formats=["docx"])
    with pytest.raises(ReportFailed, match="template"):
        reports.run_report("nonexistent", {}, store)
    with pytest.raises(MissingRecord, match=MISSING_STUDY):
        reports.run_report("study", {"study_uid": MISSING_STUDY}, store)
    with pytest.raises(MissingRecord, match="no prediction of model"):
        reports.run_report("study", {"study_uid": study_uid, "model_id": "no-such-model"}, store)
    with pytest.raises(ReportFailed, match="not a valid identifier"):
        reports.run_report("study", {"study_uid": "../records"}, store)
    with pytest.raises(ReportFailed, match="not a valid identifier"):
        reports.run_report("study", {"study_uid": study_uid, "model_id": "../m"}, store)
    with pytest.raises(ReportFailed, match="memory://"):
        reports.run_report("cohort", {}, Store("memory://reports-test"))
    with pytest.raises(ReportFailed, match="is not the store"):
        reports.run_report("cohort", {"store_url": "/elsewhere"}, store)
    assert store.list("reports/") == before


def test_a_model_has_a_result_for_the_report_when_the_catalog_says_so(study_store):
    store, study_uid = study_store
    template = resolve_template("study")
    with pytest.raises(MissingRecord):
        check_parameters(template, {"study_uid": study_uid, "model_id": "m-1"}, store)
    # a record of the model under another key (an older store) still counts, as in the catalog
    store.write_json(
        layout.result_record_key(study_uid, "renamed"),
        {"study_uid": study_uid, "model_id": "m-1", "label": "lesion", "probability": 0.9},
    )
    full = check_parameters(template, {"study_uid": study_uid, "model_id": "m-1"}, store)
    assert full == {"study_uid": study_uid, "model_id": "m-1", "store_url": store.url}
