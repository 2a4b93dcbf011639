"""Ingest from a DICOMweb archive: Orthanc for the real thing, a scripted server for the faults.

Series are real slices re-instanced (``support.archive_series``) with PHI planted; every
test checks the store holds either the whole series de-identified, or nothing of it.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pydicom
import pytest

import imaging_lib
from imaging_lib import sample_data
from imaging_lib.cli import main
from imaging_lib.errors import ArchiveUnauthorized, ArchiveUnavailable, NothingMatched
from imaging_lib.ingestion.batch import ingest
from imaging_lib.interop.dicomweb import DicomwebArchive
from imaging_lib.io.dicom import read_dicom_bytes
from imaging_lib.store import layout
from imaging_lib.store.objects import Store
from support.archive_series import planted_patient_id, reinstanced, series_answer, study_answer, upload
from support.phi import find_phi_in_store
from support.scripted_http import Answer, ScriptedServer, multipart

SECRET = "archive-ingest-secret-0123456789"
FAST = {"attempts": 3, "backoff": 0.01, "timeout": (2.0, 5.0)}
MULTIPART = 'multipart/related; type="application/dicom"; boundary=imaging-lab-boundary'


@pytest.fixture
def credentials(orthanc, monkeypatch):
    monkeypatch.setenv("IMAGING_DICOMWEB_USER", orthanc.username)
    monkeypatch.setenv("IMAGING_DICOMWEB_PASSWORD", orthanc.password)
    monkeypatch.delenv("IMAGING_DICOMWEB_TOKEN", raising=False)


@pytest.fixture
def no_credentials(monkeypatch):
    for name in ("IMAGING_DICOMWEB_USER", "IMAGING_DICOMWEB_PASSWORD", "IMAGING_DICOMWEB_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def _ct(count: int, tag: str, **options) -> list[bytes]:
    return reinstanced([sample_data.pydicom_file("CT_small.dcm")], count, patient_id=planted_patient_id(tag), **options)


def _nothing_but_the_key(store: Store) -> bool:
    return set(store.list()) <= {layout.deid_key_fingerprint_key()}


# ---------------------------------------------------------------------------- Orthanc
def test_a_series_is_retrieved_deidentified_and_reads_as_the_original(orthanc, credentials, tmp_path):
    files = _ct(12, "whole")
    upload(orthanc, files)
    store = Store(tmp_path / "store")
    seen = []
    summary = imaging_lib.ingest(
        orthanc.dicomweb_url,
        store,
        query={"patient": planted_patient_id("whole"), "modality": "CT", "since": "2024-01-01"},
        secret=SECRET,
        progress=False,
        on_progress=lambda done, total: seen.append((done, total)),
    )
    assert len(summary.ingested) == 12 and summary.ok, str(summary)
    assert seen[-1] == (12, 12) and [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert find_phi_in_store(store) == {}
    (volume_key,) = store.list("volumes/")
    volume = store.read_volume(volume_key)
    original = read_dicom_bytes([(f"{i}.dcm", data) for i, data in enumerate(files)])
    np.testing.assert_array_equal(volume.array, original.array)  # HU (CT_small's intercept -1024 applied)
    np.testing.assert_allclose(volume.affine, original.affine)
    (retrieval,) = store.list(layout.RETRIEVAL_RECORDS)
    record = store.read_json(retrieval)
    assert record["archive"] == orthanc.dicomweb_url.removeprefix("dicomweb+")
    assert (record["instances"], record["stored"], record["quarantined"]) == (12, 12, 0)
    text = str(summary) + repr(summary) + str(store.read_many(store.list("records/")))
    assert orthanc.password not in text and orthanc.username + ":" not in text
    originals = {pydicom.dcmread(io.BytesIO(f)).SeriesInstanceUID for f in files[:1]}
    assert not any(uid in text for uid in originals)


def test_a_series_ingested_before_is_skipped_without_a_request(orthanc, credentials, tmp_path):
    files = _ct(4, "resume")
    upload(orthanc, files)
    store = Store(tmp_path / "store")
    query = {"patient": planted_patient_id("resume")}
    first = ingest(orthanc.dicomweb_url, store, query=query, secret=SECRET, progress=False)
    archive = DicomwebArchive(orthanc.dicomweb_url)
    archive.stream_series = lambda *args, **kwargs: pytest.fail("a recorded series was retrieved again")
    before = store.versions()
    second = ingest(archive, store, query=query, secret=SECRET, progress=False)
    assert len(first.ingested) == 4 and not second.ingested and not second.failed
    (skipped,) = second.skipped
    assert skipped["kind"] == "dicomweb-series" and skipped["reason"] == "already in the store"
    assert skipped["series_uid"] == first.ingested[0]["series_uid"]
    assert store.versions() == before  # nothing written again


def test_modality_and_dates_choose_the_series(orthanc, credentials, tmp_path):
    ct = _ct(3, "filters", study_date="20240110")
    mr = reinstanced(sample_data.brain_series()[:3], 3, patient_id=planted_patient_id("filters"), study_date="20240110")
    old = _ct(2, "filters", study_date="20190101")
    upload(orthanc, ct + mr + old)
    store = Store(tmp_path / "store")
    query = {"patient": planted_patient_id("filters"), "modality": "CT", "since": "2024-01-01"}
    summary = ingest(orthanc.dicomweb_url, store, query=query, secret=SECRET, progress=False)
    assert len(summary.ingested) == 3 and {e["kind"] for e in summary.ingested} == {"dicom"}
    (volume_key,) = store.list("volumes/")
    assert store.read_volume(volume_key).metadata["modality"] == "CT"


def test_a_query_that_matches_nothing_is_a_clear_error_and_writes_nothing(orthanc, credentials, tmp_path, capsys):
    store = Store(tmp_path / "store")
    patient = planted_patient_id("nobody")
    with pytest.raises(NothingMatched, match="no study matches the query"):
        ingest(orthanc.dicomweb_url, store, query={"patient": patient, "modality": "CT"}, progress=False)
    assert store.list() == []
    code = main(["ingest", orthanc.dicomweb_url, "--patient", patient, "--store", str(tmp_path / "cli")])
    err = capsys.readouterr().err
    assert code == 2 and "NothingMatched" in err and "patient ID given" in err and patient not in err


def test_the_command_ingests_an_archive_and_never_prints_a_secret(orthanc, credentials, tmp_path, capsys):
    upload(orthanc, _ct(3, "cli"))
    args = ["ingest", orthanc.dicomweb_url, "--patient", planted_patient_id("cli"), "--modality", "CT"]
    args += ["--since", "2024-01-01", "--store", str(tmp_path / "store")]
    assert main(args) == 0
    out = capsys.readouterr()
    bare = orthanc.dicomweb_url.removeprefix("dicomweb+")
    assert "ingested 3 file(s)" in out.out and f"archive {bare}: 1 series retrieved" in out.out
    assert main(args) == 0
    assert "0 series retrieved, 1 skipped" in capsys.readouterr().out
    assert main(["ingest", f"dicomweb+http://alice:{orthanc.password}@127.0.0.1:1/dicom-web", "--patient", "x"]) == 2
    assert main(["ingest", str(tmp_path), "--patient", "x"]) == 2
    printed = capsys.readouterr()
    assert orthanc.password not in printed.out + printed.err and "never in the address" in printed.err


def test_credentials_never_reach_a_log_even_at_debug_level(orthanc, credentials, tmp_path, caplog):
    upload(orthanc, _ct(2, "logs"))
    with caplog.at_level(logging.DEBUG):
        ingest(orthanc.dicomweb_url, Store(tmp_path / "s"), query={"patient": planted_patient_id("logs")})
    token = base64.b64encode(f"{orthanc.username}:{orthanc.password}".encode()).decode()
    assert caplog.records and orthanc.password not in caplog.text and token not in caplog.text


def test_a_stopped_archive_is_unavailable_and_nothing_is_written(orthanc, credentials, tmp_path):
    store = Store(tmp_path / "store")
    archive = DicomwebArchive(orthanc.dicomweb_url, **FAST)
    with orthanc.stopped(), pytest.raises(ArchiveUnavailable, match="after 3 attempts"):
        ingest(archive, store, query={"patient": "anyone"}, secret=SECRET, progress=False)
    assert store.list() == []


def test_wrong_credentials_are_refused_before_anything_is_written(orthanc, monkeypatch, tmp_path):
    monkeypatch.setenv("IMAGING_DICOMWEB_USER", orthanc.username)
    monkeypatch.setenv("IMAGING_DICOMWEB_PASSWORD", "not-the-password")
    store = Store(tmp_path / "store")
    with pytest.raises(ArchiveUnauthorized) as caught:
        ingest(orthanc.dicomweb_url, store, query={"patient": "anyone"}, secret=SECRET, progress=False)
    assert caught.value.status == 401 and "not-the-password" not in str(caught.value) and store.list() == []


# ---------------------------------------------------------------------------- scripted faults
def _query(tag: str) -> dict[str, str]:
    return {"patient": planted_patient_id(tag)}


def _script(files, *wado: Answer) -> list[Answer]:
    return [Answer(200, study_answer(files)), Answer(200, series_answer(files)), *wado]


def test_a_body_cut_short_on_every_attempt_stores_nothing_and_the_next_run_stores_the_series(no_credentials, tmp_path):
    files = _ct(5, "cut")
    cut = Answer(200, multipart(files)[:-200], MULTIPART)  # no closing boundary: the last part is incomplete
    store = Store(tmp_path / "store")
    with ScriptedServer(*_script(files, cut, cut, cut)) as server:
        summary = ingest(DicomwebArchive(server.url, **FAST), store, query=_query("cut"), secret=SECRET)
    assert len(server.received) == 5  # two queries, three attempts
    (failed,) = summary.failed
    assert failed["error"] == "ArchiveResponseInvalid" and "truncated" in failed["reason"]
    assert not summary.ingested and not summary.quarantined and _nothing_but_the_key(store)
    with ScriptedServer(*_script(files, Answer(200, multipart(files), MULTIPART))) as server:
        again = ingest(DicomwebArchive(server.url, **FAST), store, query=_query("cut"), secret=SECRET)
    assert len(again.ingested) == 5 and again.ok and len(store.list(layout.RETRIEVAL_RECORDS)) == 1


def test_a_connection_lost_mid_series_is_retried_from_the_first_instance(no_credentials, tmp_path):
    files = _ct(60, "lost")  # 2.4 MB: the half sent holds more than one network chunk (1 MiB) of parts
    whole = multipart(files)
    lost = Answer(200, whole[: len(whole) // 2], MULTIPART, declared_length=len(whole))
    store = Store(tmp_path / "store")
    seen = []
    with ScriptedServer(*_script(files, lost, Answer(200, whole, MULTIPART))) as server:
        summary = ingest(
            DicomwebArchive(server.url, **FAST),
            store,
            query=_query("lost"),
            secret=SECRET,
            progress=False,
            on_progress=lambda done, total: seen.append(done),
        )
    assert len(summary.ingested) == 60 and summary.ok and not summary.skipped
    assert len(store.list("raw/")) == 60 and seen[-1] == 60
    assert any(later < earlier for earlier, later in itertools.pairwise(seen))  # counted again from 0


@pytest.mark.parametrize(
    ("answers", "error", "requests"),
    [
        ([Answer(503, b"busy")] * 3, "ArchiveServerError", 3),
        ([Answer(404, b"gone")], "ArchiveRefused", 1),
        ([Answer(200, b"not multipart", "application/dicom")] * 3, "ArchiveResponseInvalid", 3),
    ],
    ids=["5xx retried", "4xx at once", "not multipart"],
)
def test_a_series_refused_fails_alone_with_its_typed_error(no_credentials, tmp_path, answers, error, requests):
    files = _ct(2, "refused")
    with ScriptedServer(*_script(files, *answers)) as server:
        summary = ingest(DicomwebArchive(server.url, **FAST), Store(tmp_path / "s"), query=_query("refused"))
    (failed,) = summary.failed
    assert failed["error"] == error and len(server.received) == 2 + requests
    assert "gone" not in failed["reason"] and "busy" not in failed["reason"]  # the archive's own text stays out
    assert _nothing_but_the_key(Store(tmp_path / "s"))


def test_a_slow_archive_times_out(no_credentials, tmp_path):
    files = _ct(1, "slow")
    with ScriptedServer(Answer(200, study_answer(files), delay=1.0)) as server:
        archive = DicomwebArchive(server.url, attempts=2, backoff=0.01, timeout=(1.0, 0.3))
        with pytest.raises(ArchiveUnavailable, match="no answer within 0.3 s after 2 attempts"):
            ingest(archive, Store(tmp_path / "s"), query=_query("slow"))


def test_an_instance_of_another_series_is_quarantined_and_the_rest_stored(no_credentials, tmp_path):
    files = _ct(3, "mixed")
    stranger = _ct(1, "stranger")[0]
    with ScriptedServer(*_script(files, Answer(200, multipart([*files, stranger]), MULTIPART))) as server:
        summary = ingest(DicomwebArchive(server.url, **FAST), Store(tmp_path / "s"), query=_query("mixed"))
    assert len(summary.ingested) == 3 and len(summary.quarantined) == 1
    assert "another series" in summary.quarantined[0]["reason"]


def test_the_archive_going_down_mid_ingest_fails_the_series_left_without_asking_again(no_credentials, tmp_path):
    first, second = _ct(2, "down"), _ct(2, "down")
    studies = Answer(200, study_answer(first)[:-1] + b"," + study_answer(second)[1:])
    script = [
        studies,
        Answer(200, series_answer(first)),
        Answer(200, series_answer(second)),
        Answer(401, b"expired"),
    ]
    with ScriptedServer(*script) as server:
        summary = ingest(DicomwebArchive(server.url, **FAST), Store(tmp_path / "s"), query=_query("down"))
    assert [f["error"] for f in summary.failed] == ["ArchiveUnauthorized", "ArchiveUnauthorized"]
    assert summary.failed[1]["reason"].startswith("not tried") and len(server.received) == 4


# ---------------------------------------------------------------------------- bounded memory
_PEAK_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys
    sys.path.insert(0, {tests!r})
    import conftest  # registers the support package
    from imaging_lib.ingestion.batch import ingest
    from imaging_lib.interop.dicomweb import DicomwebArchive
    from imaging_lib.store.objects import Store

    def peak():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    mode, url, patient, store_url = sys.argv[1:5]
    archive = DicomwebArchive(url)
    ingest(archive, Store(store_url + "-warm"), query={{"patient": {warm!r}}}, progress=False)  # imports, caches
    before = peak()
    if mode == "stream":
        from imaging_lib.ingestion.archive_query import ArchiveQuery, find_studies
        (study,) = find_studies(archive, ArchiveQuery(patient=patient))
        sizes = []
        archive.stream_series(study.study_uid, study.series[0].series_uid, lambda part: sizes.append(len(part)))
        result = {{"instances": len(sizes), "bytes": sum(sizes)}}
    else:
        summary = ingest(archive, Store(store_url), query={{"patient": patient}}, progress=False)
        result = {{"instances": len(summary.ingested)}}
    print(json.dumps({{**result, "growth": peak() - before}}))
    """
)


def test_a_500_instance_series_streams_a_part_at_a_time_and_ingests_within_its_own_size(orthanc, credentials, tmp_path):
    """Peak RSS in a fresh process: the retrieve holds one part, the ingest the de-identified series and its volume."""
    brain = sample_data.brain_series()
    upload(orthanc, reinstanced(brain, 500, patient_id=planted_patient_id("big")), threads=8)
    upload(orthanc, reinstanced(brain[:2], 2, patient_id=planted_patient_id("warm")))
    tests = str(Path(__file__).resolve().parents[2])
    script = _PEAK_SCRIPT.format(tests=tests, warm=planted_patient_id("warm"))
    results = {}
    for mode in ("stream", "ingest"):
        run = subprocess.run(
            [sys.executable, "-c", script, mode, orthanc.dicomweb_url, planted_patient_id("big"), str(tmp_path / mode)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        results[mode] = json.loads(run.stdout.strip().splitlines()[-1])
    body = results["stream"]["bytes"]
    assert results["stream"]["instances"] == results["ingest"]["instances"] == 500 and body > 60 * 2**20
    assert results["stream"]["growth"] < 0.1 * body, results  # one part (128 KiB) and the chunks in flight
    volume = 256 * 256 * 500 * 2  # the int16 volume read back
    assert results["ingest"]["growth"] < body + 2 * volume, results  # never the body on top of the series
