"""export_study and ``imaging-lab export``: to a folder, to a real Orthanc and back, and when things fail."""

from __future__ import annotations

import hashlib
import io

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

from imaging_lib.cli import main
from imaging_lib.errors import ArchiveServerError, ArchiveUnauthorized, MissingRecord, NothingToExport
from imaging_lib.interop import export_study
from imaging_lib.interop.dicomweb import DicomwebArchive
from imaging_lib.interop.export import check_formats
from imaging_lib.io.dicom_dataset import dataset_to_bytes
from imaging_lib.store import layout, records
from support.phi import find_phi
from support.scripted_http import Answer, ScriptedServer

SECRET = "n0t-in-any-0utput"


@pytest.fixture
def archive_credentials(orthanc, monkeypatch):
    monkeypatch.delenv("IMAGING_DICOMWEB_TOKEN", raising=False)
    monkeypatch.setenv("IMAGING_DICOMWEB_USER", orthanc.username)
    monkeypatch.setenv("IMAGING_DICOMWEB_PASSWORD", orthanc.password)
    return orthanc


def _export_records(store, study_uid):
    return store.list(layout.prefix("export_record", study_uid=study_uid))


# ---------------------------------------------------------------------------- to a folder
def test_a_folder_export_writes_seg_sr_and_pmap_and_records_them_last(results_store, tmp_path):
    store, uid = results_store.store, results_store.uids["brain"]
    summary = export_study(store, uid, out=tmp_path / "out")
    kinds = sorted(entry["kind"] for entry in summary.objects)
    assert kinds == ["pmap", "seg", "sr"] and summary.skipped == []
    files = sorted((tmp_path / "out").iterdir())
    assert [f.name.split("-")[0] for f in files] == ["pmap", "seg", "sr"]
    record = records.read_record(store, summary.record_key)
    assert record["destination"] == {"kind": "folder", "path": str(tmp_path / "out")}
    for entry, path in zip(sorted(record["objects"], key=lambda e: e["kind"]), files):
        data = path.read_bytes()
        assert (
            entry["sha256"] == hashlib.sha256(data).hexdigest()
            and path.name == f"{entry['kind']}-{entry['sop_uid']}.dcm"
        )
        assert find_phi(data) == [] and pydicom.dcmread(io.BytesIO(data)).StudyInstanceUID == uid
    again = export_study(store, uid, "seg", out=tmp_path / "again")
    assert [e["sop_uid"] for e in again.objects] == [e["sop_uid"] for e in summary.objects if e["kind"] == "seg"]


def test_formats_choose_what_is_made_and_nothing_is_an_error(results_store, tmp_path):
    store = results_store.store
    only = export_study(store, results_store.uids["ct"], "sr", out=tmp_path / "sr")
    assert [e["kind"] for e in only.objects] == ["sr"]
    with pytest.raises(NothingToExport, match="no saved mask"):
        export_study(store, results_store.uids["mr"], out=tmp_path / "mr")
    assert not (tmp_path / "mr").exists() and _export_records(store, results_store.uids["mr"]) == []
    with pytest.raises(MissingRecord):
        export_study(store, "2.25.404", out=tmp_path / "none")
    with pytest.raises(ValueError, match="formats are seg, sr, pmap"):
        check_formats("seg,rtstruct")
    with pytest.raises(ValueError, match="exactly one destination"):
        export_study(store, results_store.uids["ct"], out=tmp_path, to="dicomweb+http://127.0.0.1:1/dicom-web")
    assert check_formats(" SEG, sr,seg ") == ("seg", "sr")


def test_a_failed_send_leaves_no_export_record(results_store, monkeypatch):
    monkeypatch.delenv("IMAGING_DICOMWEB_USER", raising=False)
    monkeypatch.delenv("IMAGING_DICOMWEB_TOKEN", raising=False)
    store, uid = results_store.store, results_store.uids["ct"]
    before = _export_records(store, uid)
    options = {"backoff": 0.01, "attempts": 2}
    with (
        ScriptedServer(Answer(503, b"down for maintenance", "text/plain")) as server,
        pytest.raises(ArchiveServerError, match="503"),
    ):
        export_study(store, uid, to=server.url, archive_options=options)
    assert _export_records(store, uid) == before
    assert len(server.received) == 2  # the first object failed twice; nothing after it was sent


# ---------------------------------------------------------------------------- the real archive
def test_export_to_orthanc_and_back_references_resolve_voxels_and_numbers_match(results_store, archive_credentials):
    orthanc, store = archive_credentials, results_store.store
    for paths in results_store.phi_files.values():  # the hospital's originals, PHI and all
        for path in paths:
            assert find_phi(path.read_bytes())  # the planted PHI is there to be found
            orthanc.upload(path.read_bytes())
    summaries = {
        name: export_study(store, results_store.uids[name], to=orthanc.dicomweb_url, with_sources=True)
        for name in ("brain", "ct")
    }
    archive = DicomwebArchive(orthanc.dicomweb_url)
    for name, summary in summaries.items():
        uid = results_store.uids[name]
        assert summary.destination["url"] == orthanc.dicomweb_url.removeprefix("dicomweb+")
        held = archive.instance_uids(uid)
        exported = {e["kind"]: e for e in summary.objects if e["kind"] != "source"}
        back = {
            kind: archive.retrieve_instance(uid, entry["series_uid"], entry["sop_uid"])
            for kind, entry in exported.items()
        }
        for kind, dataset in back.items():
            assert find_phi(dataset_to_bytes(dataset)) == [], kind
            assert dataset.PatientIdentityRemoved == "YES"
        for entry in (e for e in summary.objects if e["kind"] == "source"):  # the de-identified images sent along
            image = archive.retrieve_instance(uid, entry["series_uid"], entry["sop_uid"])
            assert find_phi(dataset_to_bytes(image)) == [] and image.PatientIdentityRemoved == "YES"
        seg = hd.seg.Segmentation.from_dataset(back["seg"])
        referenced = {uids[2] for uids in seg.get_source_image_uids()}
        assert referenced and referenced <= held  # the SEG's source images are in the archive
        mask = store.read_volume(results_store.masks[name]["mask_key"])
        source_uids = _source_uids_by_slice(store, results_store, name)
        for k, sop_uid in enumerate(source_uids):
            if mask.array[:, :, k].any():
                pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=[sop_uid], segment_numbers=[1])
                assert np.array_equal(pixels[0, :, :, 0], mask.array[:, :, k].T)
        report = hd.sr.Comprehensive3DSR.from_dataset(back["sr"])
        (group,) = report.content.get_volumetric_roi_measurement_groups()
        assert group.referenced_segment.referenced_sop_instance_uid in held
        (volume,) = group.get_measurements(name=codes.SCT.Volume)
        assert volume.value == pytest.approx(results_store.masks[name]["quantification"]["volume_ml"], rel=1e-6)
        (prediction,) = report.content.get_image_measurement_groups()
        (probability,) = prediction.get_measurements(name=codes.DCM.Probability)
        assert probability.value == pytest.approx(results_store.results[name]["probability"], rel=1e-6)
        assert str(back["pmap"].SOPClassUID.name) == "Parametric Map Storage"
        derived = back["pmap"].PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0]
        assert derived.SourceImageSequence[0].ReferencedSOPInstanceUID in held
    assert SECRET not in str(summaries)


def _source_uids_by_slice(store, results_store, name):
    from imaging_lib.interop.sources import source_series_for

    record = results_store.masks[name]
    mask = store.read_volume(record["mask_key"])
    source = source_series_for(store, results_store.study(name), mask, record["mask_key"])
    return [str(image.SOPInstanceUID) for image in source.images]


# ---------------------------------------------------------------------------- the command line
def test_the_command_writes_a_folder_and_sends_to_the_archive(results_store, archive_credentials, tmp_path, capsys):
    url, uid = results_store.store.url, results_store.uids["ct"]
    assert main(["export", uid, "--store", url, "--format", "seg,sr", "--out", str(tmp_path / "cli")]) == 0
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "cli").iterdir()) == ["seg", "sr"]
    assert main(["export", uid, "--store", url, "--to", archive_credentials.dicomweb_url]) == 0
    out = capsys.readouterr().out
    assert "pmap" in out and "record: records/exports/" in out and archive_credentials.password not in out


def test_the_command_fails_clearly_and_never_prints_a_secret(results_store, orthanc, monkeypatch, capsys):
    url, uid = results_store.store.url, results_store.uids["ct"]
    monkeypatch.setenv("IMAGING_DICOMWEB_USER", orthanc.username)
    monkeypatch.setenv("IMAGING_DICOMWEB_PASSWORD", SECRET)
    assert main(["export", uid, "--store", url, "--to", orthanc.dicomweb_url]) == 2
    error = capsys.readouterr().err
    assert ArchiveUnauthorized.__name__ in error and "401" in error and SECRET not in error
    with_password = orthanc.dicomweb_url.replace("://", f"://{orthanc.username}:{SECRET}@")
    assert main(["export", uid, "--store", url, "--to", with_password]) == 2
    error = capsys.readouterr().err
    assert "never in the address" in error and SECRET not in error
    monkeypatch.delenv("IMAGING_DICOMWEB_URL", raising=False)
    assert main(["export", uid, "--store", url]) == 2
    assert "--out DIR or --to URL" in capsys.readouterr().err
