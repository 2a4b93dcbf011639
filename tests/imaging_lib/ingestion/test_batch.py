"""Ingest real DICOM and NIfTI into a local store and the GCS emulator: no PHI, stable UIDs, quarantine."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import subprocess
import sys
import textwrap
import tracemalloc
import uuid
import zipfile

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.encaps import encapsulate

from imaging_lib import errors as error_module
from imaging_lib import sample_data
from imaging_lib.cli import main
from imaging_lib.errors import ImagingError, KeyMismatch
from imaging_lib.ingestion.batch import ingest
from imaging_lib.io.dicom import read_dicom_bytes
from imaging_lib.limits import MAX_FILE_BYTES, MAX_ZIP_MEMBERS
from imaging_lib.store import layout
from imaging_lib.store.objects import Store
from support.bombs import MIB, nested_zip, rle_zero_frame, zip_of_zeros
from support.mutations import MUTATED_KEYWORDS, raw_values, with_raw_value
from support.phi import find_phi, find_phi_in_store, write_phi_copies

SECRET = "ingest-test-secret-0123456789"
TYPED_ERRORS = {
    name
    for name in error_module.__all__
    if issubclass(getattr(error_module, name), error_module.ImagingError) and name != "UnexpectedFailure"
}


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


# ---------------------------------------------------------------------------- one bad value never stops a batch
def _corrupt_deflate() -> bytes:
    data = bytearray(sample_data.pydicom_file("image_dfl.dcm").read_bytes())
    data[400:420] = b"\xff" * 20
    return bytes(data)


@pytest.mark.parametrize(
    ("name", "make", "outcome"),
    [
        (
            "slope.dcm",
            lambda: with_raw_value(sample_data.pydicom_file("CT_small.dcm"), "RescaleSlope", b"abc "),
            "UnreadableImage",
        ),
        (
            "window.dcm",
            lambda: with_raw_value(sample_data.pydicom_file("CT_small.dcm"), "WindowCenter", b"abc "),
            "ingested",
        ),
        (
            "thick.dcm",
            lambda: with_raw_value(sample_data.pydicom_file("CT_small.dcm"), "SliceThickness", b"abc "),
            "ingested",
        ),
        (
            "frames.dcm",
            lambda: with_raw_value(sample_data.pydicom_file("CT_small.dcm"), "NumberOfFrames", b"-2"),
            "UnreadableImage",
        ),
        ("bits.dcm", lambda: with_raw_value(sample_data.pydicom_file("CT_small.dcm"), "BitsStored", b""), "ingested"),
        ("deflate.dcm", _corrupt_deflate, "UnreadableImage"),
    ],
    ids=["slope", "window", "thickness", "frames", "bits-stored", "deflate"],
)
def test_one_bad_value_never_stops_a_batch(tmp_path, brain_files, name, make, outcome):
    store = Store(tmp_path / "store")
    summary = ingest([(name, make()), *brain_files[:3]], store, secret=SECRET, progress=False)
    assert sorted(e["source"] for e in summary.ingested if e["source"] != name) == sorted(map(str, brain_files[:3]))
    if outcome == "ingested":
        assert [e["source"] for e in summary.ingested if e["source"] == name] == [name]
        record = store.read_json(layout.study_record_key(summary.ingested[0]["study_uid"]))
        assert record["series"]
    else:
        assert [(q["source"], q["error"]) for q in summary.quarantined] == [(name, outcome)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(keyword=st.sampled_from(MUTATED_KEYWORDS), raw=raw_values())
def test_mutated_attribute_values_are_typed_errors_and_the_good_files_are_stored(keyword, raw):
    bad = with_raw_value(sample_data.pydicom_file("CT_small.dcm"), keyword, raw)
    store = Store(f"memory://mutated-{uuid.uuid4().hex}")
    good = sample_data.pydicom_file("MR_small.dcm")
    summary = ingest([("mutated.dcm", bad), good], store, secret=SECRET, progress=False)
    errors = {q["error"] for q in summary.quarantined}
    assert errors <= TYPED_ERRORS, summary.quarantined
    assert str(good) in {e["source"] for e in summary.ingested}


# ---------------------------------------------------------------------------- bounded ingest
def test_a_10_mib_zip_of_large_members_is_refused_before_anything_inflates(tmp_path):
    bomb = zip_of_zeros([1024] * 10)  # ten members of 1 GiB of zeros
    assert len(bomb) < 11 * MIB
    tracemalloc.start()
    summary = ingest(
        [("bomb.zip", bomb), sample_data.pydicom_file("MR_small.dcm")], tmp_path / "s", secret=SECRET, progress=False
    )
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [(q["source"], q["error"]) for q in summary.quarantined] == [("bomb.zip", "UnsafeArchive")]
    assert "declares 10737418240 bytes inflated" in summary.quarantined[0]["reason"]
    assert len(summary.ingested) == 1 and peak < 64 * MIB


def test_a_nested_zip_of_65536_entries_costs_only_its_allowed_depth(tmp_path):
    bomb, leaves = nested_zip()
    assert leaves == 65536 and len(bomb) < 8 * 1024
    summary = ingest(("nested.zip", bomb), tmp_path / "s", secret=SECRET, progress=False)
    touched = summary.ingested + summary.skipped + summary.quarantined
    assert len(touched) == 256  # the 256 inner archives, never their 65,536 members
    assert {q["error"] for q in summary.quarantined} == {"UnsafeArchive"}
    assert "nested 3 deep" in summary.quarantined[0]["reason"]
    assert len(Store(tmp_path / "s").list("records/quarantine/")) == 1  # the same refused bytes, one record


def test_a_zip_with_too_many_members_is_refused(tmp_path):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        for index in range(MAX_ZIP_MEMBERS + 1):
            bundle.writestr(f"f{index}", b"")
    summary = ingest(("many.zip", archive.getvalue()), tmp_path / "s", secret=SECRET, progress=False)
    assert [q["error"] for q in summary.quarantined] == ["UnsafeArchive"]
    assert f"holds {MAX_ZIP_MEMBERS + 1} members" in summary.quarantined[0]["reason"]


def test_zip_members_and_folder_entries_left_out_are_listed_with_a_reason(tmp_path, brain_files):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(brain_files[0], "series/a.dcm")
        for name in ("../evil.dcm", "series/./b.dcm", "/etc/c.dcm", ".hidden.dcm", "series/.git/d.dcm", "__MACOSX/._e"):
            bundle.writestr(name, brain_files[1].read_bytes())
        link = zipfile.ZipInfo("series/link.dcm")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        bundle.writestr(link, "../../etc/passwd")
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "scan.dcm").write_bytes(brain_files[2].read_bytes())
    (folder / ".DS_Store").write_bytes(b"junk")
    (folder / ".cache").mkdir()
    (folder / "sub" / "loop").symlink_to(folder)
    (folder / "self").symlink_to(folder / "self")
    (folder / "dangling.dcm").symlink_to(folder / "missing.dcm")
    summary = ingest([("upload.zip", archive.getvalue()), folder], tmp_path / "s", secret=SECRET, progress=False)
    reasons = {entry["source"]: entry["reason"] for entry in summary.skipped}
    assert reasons == {
        "upload.zip::../evil.dcm": "unsafe path in the archive (a '.' or '..' segment, or an absolute path)",
        "upload.zip::series/./b.dcm": "unsafe path in the archive (a '.' or '..' segment, or an absolute path)",
        "upload.zip::/etc/c.dcm": "unsafe path in the archive (a '.' or '..' segment, or an absolute path)",
        "upload.zip::.hidden.dcm": "hidden file",
        "upload.zip::series/.git/d.dcm": "in a hidden folder",
        "upload.zip::__MACOSX/._e": "macOS resource fork",
        "upload.zip::series/link.dcm": "symbolic link (not followed)",
        str(folder / ".DS_Store"): "hidden file",
        str(folder / ".cache"): "hidden folder",
        str(folder / "self"): "symbolic link loop",
        str(folder / "dangling.dcm"): "broken symbolic link",
        str(folder / "sub" / "loop"): "symbolic link loop (a folder that contains itself)",
    }
    assert {e["source"] for e in summary.ingested} == {"upload.zip::series/a.dcm", str(folder / "scan.dcm")}
    assert "skipped 0 already stored and 12 other(s)" in str(summary) and "hidden folder" in str(summary)


def test_a_series_is_stored_once_ingest_moves_past_its_folder(tmp_path, brain_files):
    store = Store(tmp_path / "s")
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    for path in brain_files[:4]:
        (first / path.name).write_bytes(path.read_bytes())
    (second / "ct.dcm").write_bytes(sample_data.pydicom_file("CT_small.dcm").read_bytes())
    seen: list[int] = []

    def sources():
        yield first
        yield second
        seen.append(len(store.list(layout.STUDY_RECORDS)))  # asked for the third: the first folder is stored
        yield sample_data.pydicom_file("MR_small.dcm")

    summary = ingest(sources(), store, secret=SECRET, progress=False)
    assert seen == [1] and len(summary.ingested) == 6 and len(summary.studies) == 3


def test_series_held_past_the_memory_budget_are_stored_early_and_completed_later(tmp_path, brain_files, monkeypatch):
    monkeypatch.setattr("imaging_lib.ingestion.batch.MAX_PENDING_BYTES", 600_000)  # about 4 brain slices
    store = Store(tmp_path / "s")
    summary = ingest(brain_files, store, secret=SECRET, progress=False)
    assert len(summary.ingested) == 20 and len(summary.studies) == 1
    record = store.read_json(layout.study_record_key(summary.studies[0]))
    assert record["shape"] == [256, 256, 20] and record["series"][0]["file_count"] == 20
    assert len(record["provenance"]["sources"]) == 20


_PEAK_RSS = textwrap.dedent(
    """
    import resource, sys, warnings
    warnings.simplefilter("ignore")
    import psutil
    from imaging_lib import sample_data
    from imaging_lib.ingestion import ingest
    from imaging_lib.store import layout
    from imaging_lib.store.objects import Store
    data = open(sys.argv[1], "rb").read()
    ingest(sample_data.pydicom_file("MR_small.dcm"), Store(sys.argv[2] + "/warm"), secret="x" * 32, progress=False)
    before = psutil.Process().memory_info().rss
    summary = ingest([("frames.dcm", data)], Store(sys.argv[2] + "/s"), secret="x" * 32, progress=False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    entry = summary.ingested[0]
    volume = Store(sys.argv[2] + "/s").read_volume(layout.volume_key(entry["study_uid"], entry["series_uid"]))
    print(peak - before, volume.array.nbytes)
    """
)


def test_a_3_mib_rle_file_peaks_within_3x_its_decoded_series(tmp_path):
    dataset = pydicom.dcmread(sample_data.pydicom_file("CT_small.dcm"))
    dataset.Rows = dataset.Columns = 512
    dataset.NumberOfFrames = 400
    dataset.PixelData = encapsulate([rle_zero_frame(512, 512)] * 400)
    dataset["PixelData"].VR = "OB"
    dataset.file_meta.TransferSyntaxUID = pydicom.uid.RLELossless
    path = tmp_path / "frames.dcm"
    dataset.save_as(path, enforce_file_format=True)
    assert 3 * MIB < path.stat().st_size < 4 * MIB
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS, str(path), str(tmp_path)], capture_output=True, text=True, env=environment
    )
    assert done.returncode == 0, done.stderr[-3000:]
    growth, series = map(int, done.stdout.split())
    assert series >= 200 * MIB  # 400 frames of 512 x 512 decoded
    assert growth <= 3 * series, (growth / MIB, series / MIB)


def test_a_file_over_the_read_limit_is_refused_before_it_is_read(tmp_path):
    huge = tmp_path / "huge.dcm"
    with open(huge, "wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)  # sparse: costs no disk
    tracemalloc.start()
    summary = ingest(huge, tmp_path / "s", secret=SECRET, progress=False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [(q["source"], q["error"]) for q in summary.quarantined] == [(str(huge), "ImageTooLarge")]
    assert peak < 64 * MIB
