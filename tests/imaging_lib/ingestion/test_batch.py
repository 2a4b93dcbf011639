"""Ingest real DICOM and NIfTI into a local store and the GCS emulator: no PHI, stable UIDs, quarantine."""

from __future__ import annotations

import hashlib
import io
import zipfile

import numpy as np
import pydicom
import pytest

from imaging_lib import sample_data
from imaging_lib.cli import main
from imaging_lib.errors import ImagingError, KeyMismatch
from imaging_lib.ingestion.batch import ingest
from imaging_lib.io.dicom import read_dicom_bytes
from imaging_lib.store import layout
from imaging_lib.store.objects import Store
from support.phi import find_phi, find_phi_in_store, write_phi_copies

SECRET = "ingest-test-secret-0123456789"


@pytest.fixture(scope="module")
def phi_folder(tmp_path_factory, brain_files):
    """Copies of the brain series and pydicom's CT/MR files with known PHI planted in them."""
    folder = tmp_path_factory.mktemp("phi-sources")
    sources = [*brain_files, sample_data.pydicom_file("CT_small.dcm"), sample_data.pydicom_file("MR_small.dcm")]
    write_phi_copies(sources, folder)
    return folder


def _uids(path):
    dataset = pydicom.dcmread(path, stop_before_pixels=True)
    return {
        str(dataset.get(k)) for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID")
    }


def test_no_phi_leaves_in_any_object_or_key(store, phi_folder):
    assert all(find_phi(path.read_bytes()) for path in phi_folder.iterdir())
    summary = ingest(phi_folder, store, secret=SECRET, progress=False)
    assert len(summary.ingested) == 22 and not summary.quarantined, str(summary)
    keys = store.list()
    assert any(k.startswith("raw/") for k in keys) and any(k.startswith("volumes/") for k in keys)
    assert any(k.startswith("records/studies/") for k in keys)
    assert find_phi_in_store(store) == {}


def test_uids_are_consistent_new_and_stable(store, brain_files):
    originals = set().union(*(_uids(path) for path in brain_files)) - {"None"}
    summary = ingest(brain_files, store, secret=SECRET, progress=False)
    assert len(summary.ingested) == 20
    assert len({e["study_uid"] for e in summary.ingested}) == 1
    assert len({e["series_uid"] for e in summary.ingested}) == 1
    stored = store.read_many(store.list())
    for key, data in stored.items():
        assert not any(uid in key or uid.encode() in data for uid in originals), key
    raw = [pydicom.dcmread(io.BytesIO(d)) for k, d in stored.items() if k.endswith(".dcm")]
    assert (
        len(raw) == 20
        and len({r.StudyInstanceUID for r in raw}) == 1
        and len({r.FrameOfReferenceUID for r in raw}) == 1
    )

    again = ingest(brain_files, store, secret=SECRET, progress=False)
    assert not again.ingested and len(again.skipped) == 20
    assert again.studies == summary.studies
    assert store.read_many(store.list()) == stored  # nothing new, nothing rewritten

    with pytest.raises(KeyMismatch):  # another key would give the same patients other pseudonyms
        ingest(brain_files, store, secret="a-different-secret-987654321", progress=False)
    assert store.read_many(store.list()) == stored


def test_deidentified_dicom_reads_back_to_the_same_volume(store, brain_files, brain_volume):
    summary = ingest(brain_files, store, secret=SECRET, progress=False)
    study_uid, series_uid = summary.ingested[0]["study_uid"], summary.ingested[0]["series_uid"]
    raw = store.read_many(store.list(f"raw/{study_uid}/{series_uid}/"))
    volume = read_dicom_bytes(list(raw.items()))
    np.testing.assert_array_equal(volume.array, brain_volume.array)
    np.testing.assert_allclose(volume.affine, brain_volume.affine)
    stored = store.read_volume(layout.volume_key(study_uid, series_uid))
    np.testing.assert_array_equal(stored.array, brain_volume.array)
    np.testing.assert_allclose(stored.affine, brain_volume.affine, atol=1e-9)
    record = store.read_json(layout.study_record_key(study_uid))
    assert record["shape"] == [256, 256, 20] and record["modality"] == "MR"
    assert record["volume_key"] == layout.volume_key(study_uid, series_uid)
    assert record["provenance"]["library_version"] and record["provenance"]["created_at"]
    sources = record["provenance"]["sources"]
    assert len(sources) == 20
    bare = {hashlib.sha256(path.read_bytes()).hexdigest() for path in brain_files}
    assert not bare & set(sources)  # keyed hashes: a reader cannot test a guessed file


def _bad_inputs(tmp_path, brain_files):
    truncated = brain_files[1].read_bytes()[:40_000]
    burned = pydicom.dcmread(sample_data.pydicom_file("CT_small.dcm"))
    burned.BurnedInAnnotation = "YES"
    burned_bytes = io.BytesIO()
    burned.save_as(burned_bytes, enforce_file_format=True)
    nifti = sample_data.papaya_nifti().read_bytes()
    return {
        "empty.dcm": (b"", "UnreadableImage"),
        "notes.txt": (b"this is not an image\n" * 20, "UnreadableImage"),
        "truncated.dcm": (truncated, "UnreadableImage"),
        "plan.dcm": (sample_data.pydicom_file("rtplan.dcm").read_bytes(), "UnsupportedImage"),
        "burned.dcm": (burned_bytes.getvalue(), "BurnedInAnnotation"),
        "cut.nii.gz": (nifti[: len(nifti) // 3], "UnreadableImage"),
        "broken.zip": (b"PK\x03\x04" + b"\0" * 100, "UnreadableImage"),
    }


def test_each_bad_input_is_quarantined_and_the_batch_goes_on(store, tmp_path, brain_files):
    bad = _bad_inputs(tmp_path, brain_files)
    uploads = [(name, data) for name, (data, _) in bad.items()]
    summary = ingest([*uploads, sample_data.pydicom_file("MR_small.dcm")], store, secret=SECRET, progress=False)
    assert len(summary.ingested) == 1
    outcome = {q["source"]: q["error"] for q in summary.quarantined}
    assert outcome == {name: error for name, (_, error) in bad.items()}
    records = store.read_json_many(store.list(layout.QUARANTINE_RECORDS))
    assert len(records) == len(bad)
    for entry in summary.quarantined:
        record = records[entry["record_key"]]
        assert record["error"] == entry["error"] and record["reason"]
        assert entry["source"] not in str(record)  # no file names (they may name the patient)
    assert not any(k.startswith("quarantine/") for k in store.list())  # refused bytes are never stored


def test_zip_upload_gives_the_same_study_as_the_folder(store, brain_files):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in brain_files:
            bundle.write(path, f"upload/{path.name}")
        bundle.writestr("__MACOSX/._junk", b"resource fork")
    from_zip = ingest(("upload.zip", archive.getvalue()), store, secret=SECRET, progress=False)
    assert len(from_zip.ingested) == 20 and not from_zip.quarantined
    assert from_zip.ingested[0]["source"].startswith("upload.zip::upload/brain_")
    from_folder = ingest(brain_files[0].parent, store, secret=SECRET, progress=False)
    assert from_folder.studies == from_zip.studies and len(from_folder.skipped) == 20


def test_nifti_gets_a_generated_study_and_is_idempotent(store):
    path = sample_data.papaya_nifti("sample_image.nii.gz")
    first = ingest(path, store, secret=SECRET, progress=False)
    assert [e["kind"] for e in first.ingested] == ["nifti"]
    study_uid = first.ingested[0]["study_uid"]
    assert study_uid.startswith("2.25.")
    record = store.read_json(layout.study_record_key(study_uid))
    volume = store.read_volume(record["volume_key"])
    assert list(volume.shape) == record["shape"]
    again = ingest(path, store, secret=SECRET, progress=False)
    assert not again.ingested and again.skipped[0]["study_uid"] == study_uid


def test_burned_in_images_are_accepted_on_request(store):
    burned = pydicom.dcmread(sample_data.pydicom_file("CT_small.dcm"))
    burned.BurnedInAnnotation = "YES"
    buffer = io.BytesIO()
    burned.save_as(buffer, enforce_file_format=True)
    summary = ingest(("burned.dcm", buffer.getvalue()), store, secret=SECRET, allow_burned_in=True, progress=False)
    assert len(summary.ingested) == 1 and not summary.quarantined


def test_gs_url_sources_are_read_from_the_bucket(gcs_emulator, tmp_path, brain_files):
    source = Store(f"gs://{gcs_emulator.new_bucket('upload')}/incoming")
    source.write_many({f"series/{path.name}": path.read_bytes() for path in brain_files[:5]})
    destination = Store(tmp_path / "store")
    summary = ingest(f"{source.url}/series", destination, secret=SECRET, progress=False)
    assert len(summary.ingested) == 5 and summary.ingested[0]["source"].startswith("gs://")
    missing = ingest(f"{source.url}/nothing.dcm", destination, secret=SECRET, progress=False)
    assert [q["error"] for q in missing.quarantined] == ["UnreadableImage"]


def test_a_series_with_one_bad_slice_keeps_the_good_ones(store, brain_files):
    data = [(path.name, path.read_bytes()) for path in brain_files[1:6]]
    broken = pydicom.dcmread(brain_files[7])
    broken.Rows = 128  # pixel matrix no longer matches the series
    buffer = io.BytesIO()
    broken.save_as(buffer, enforce_file_format=True)
    summary = ingest([*data, ("odd.dcm", buffer.getvalue())], store, secret=SECRET, progress=False)
    assert len(summary.ingested) == 5
    assert [q["source"] for q in summary.quarantined] == ["odd.dcm"]
    assert isinstance(summary.quarantined[0]["reason"], str)
    record = store.read_json(layout.study_record_key(summary.studies[0]))
    assert record["shape"][2] == 5


def test_cli_ingest_prints_the_summary(tmp_path, brain_files, capsys, monkeypatch):
    monkeypatch.setenv("IMAGING_DEID_SECRET", SECRET)
    status = main(["ingest", str(brain_files[0]), str(brain_files[1]), "--store", str(tmp_path / "cli-store")])
    assert status == 0
    assert "ingested 2 file(s)" in capsys.readouterr().out
    status = main(["ingest", str(tmp_path / "missing.dcm"), "--store", str(tmp_path / "cli-store")])
    assert status == 1 and "quarantined 1" in capsys.readouterr().out


def test_errors_in_summary_are_typed_error_names(store):
    summary = ingest(("x.dcm", b"junk" * 100), store, secret=SECRET, progress=False)
    assert issubclass(
        getattr(__import__("imaging_lib.errors", fromlist=["x"]), summary.quarantined[0]["error"]), ImagingError
    )
