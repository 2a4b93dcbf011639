"""DicomwebArchive: addresses, credentials, retries and typed errors, against Orthanc and a scripted server."""

from __future__ import annotations

import io

import pydicom
import pytest

from imaging_lib import sample_data
from imaging_lib.errors import (
    ArchiveRefused,
    ArchiveResponseInvalid,
    ArchiveServerError,
    ArchiveUnauthorized,
    ArchiveUnavailable,
    InsecureConnection,
)
from imaging_lib.interop.archive_access import archive_auth, keyring_service, parse_archive_url
from imaging_lib.interop.dicomweb import DicomwebArchive
from imaging_lib.interop.multipart import split_multipart
from support.scripted_http import Answer, ScriptedServer, multipart, stow_answer

FAST = {"attempts": 3, "backoff": 0.01, "timeout": (2.0, 2.0)}
SECRET = "pa55-w0rd-never-shown"


@pytest.fixture
def ct_small():
    return pydicom.dcmread(sample_data.pydicom_file("CT_small.dcm"))


def _encoded(dataset) -> bytes:
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def no_archive_credentials(monkeypatch):
    for name in ("IMAGING_DICOMWEB_USER", "IMAGING_DICOMWEB_PASSWORD", "IMAGING_DICOMWEB_TOKEN"):
        monkeypatch.delenv(name, raising=False)


# ---------------------------------------------------------------------------- addresses
@pytest.mark.parametrize(
    ("given", "base"),
    [
        ("dicomweb+http://127.0.0.1:8042/dicom-web", "http://127.0.0.1:8042/dicom-web"),
        ("dicomweb+https://pacs.example.org/dicom-web/", "https://pacs.example.org/dicom-web"),
        ("http://[::1]:8042/dicom-web", "http://[::1]:8042/dicom-web"),
    ],
)
def test_archive_addresses_become_plain_http_base_urls(given, base):
    assert parse_archive_url(given) == base


@pytest.mark.parametrize(
    "bad",
    [
        f"dicomweb+http://alice:{SECRET}@127.0.0.1:8042/dicom-web",
        f"dicomweb+http://127.0.0.1:8042/dicom-web?access_token={SECRET}",
        f"dicomweb+http://127.0.0.1:8042/dicom-web#{SECRET}",
        "ftp://127.0.0.1/dicom-web",
        "dicomweb+http:///dicom-web",
    ],
)
def test_addresses_with_credentials_queries_or_other_schemes_are_refused_without_echoing_them(bad):
    with pytest.raises(ValueError) as caught:
        parse_archive_url(bad)
    assert SECRET not in str(caught.value)


# ---------------------------------------------------------------------------- credentials
def test_basic_and_bearer_credentials_come_from_the_environment(monkeypatch):
    base = "http://127.0.0.1:8042/dicom-web"
    assert archive_auth(base) is None
    monkeypatch.setenv("IMAGING_DICOMWEB_USER", "alice")
    monkeypatch.setenv("IMAGING_DICOMWEB_PASSWORD", SECRET)
    basic = archive_auth(base)
    assert (basic.username, basic.password) == ("alice", SECRET)
    monkeypatch.setenv("IMAGING_DICOMWEB_TOKEN", "tok")
    with pytest.raises(ValueError, match="both set"):
        archive_auth(base)
    monkeypatch.delenv("IMAGING_DICOMWEB_USER")
    assert SECRET not in repr(archive_auth(base))


def test_a_user_without_a_password_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("IMAGING_DICOMWEB_USER", "alice")
    with pytest.raises(ValueError, match="keyring"):
        archive_auth("http://127.0.0.1:8042/dicom-web")


def test_the_password_and_the_token_can_come_from_a_keyring(monkeypatch):
    import keyring
    from keyring.backend import KeyringBackend

    class MemoryKeyring(KeyringBackend):
        priority = 1

        def __init__(self):
            super().__init__()
            self.secrets = {}

        def get_password(self, service, username):
            return self.secrets.get((service, username))

        def set_password(self, service, username, password):
            self.secrets[(service, username)] = password

        def delete_password(self, service, username):
            self.secrets.pop((service, username), None)

    previous = keyring.get_keyring()
    memory = MemoryKeyring()
    keyring.set_keyring(memory)
    try:
        base = parse_archive_url("dicomweb+http://127.0.0.1/dicom-web")
        assert keyring_service(base) == "imaging-lab dicomweb http://127.0.0.1:80"
        memory.set_password(keyring_service(base), "alice", SECRET)
        memory.set_password(keyring_service(base), "bearer-token", "from-keyring")
        monkeypatch.setenv("IMAGING_DICOMWEB_USER", "alice")
        assert archive_auth(base).password == SECRET
        monkeypatch.delenv("IMAGING_DICOMWEB_USER")
        request = archive_auth(base)(type("Request", (), {"headers": {}})())
        assert request.headers["Authorization"] == "Bearer from-keyring"
    finally:
        keyring.set_keyring(previous)


def test_credentials_are_not_sent_unencrypted_to_another_machine(monkeypatch):
    monkeypatch.setenv("IMAGING_DICOMWEB_TOKEN", SECRET)
    with pytest.raises(InsecureConnection) as caught:
        DicomwebArchive("dicomweb+http://pacs.example.org/dicom-web")
    assert SECRET not in str(caught.value)
    assert DicomwebArchive("dicomweb+http://pacs.example.org/dicom-web", allow_insecure=True).url
    assert DicomwebArchive("dicomweb+https://pacs.example.org/dicom-web").url
    assert DicomwebArchive("dicomweb+http://localhost:8042/dicom-web").url


# ---------------------------------------------------------------------------- the real archive
def test_stow_and_wado_round_trip_with_basic_auth_from_the_environment(orthanc, monkeypatch, ct_small):
    monkeypatch.setenv("IMAGING_DICOMWEB_USER", orthanc.username)
    monkeypatch.setenv("IMAGING_DICOMWEB_PASSWORD", orthanc.password)
    with DicomwebArchive(orthanc.dicomweb_url) as archive:
        archive.store(ct_small)
        archive.store(ct_small)  # the same instance again: stored once, no error
        back = archive.retrieve_instance(ct_small.StudyInstanceUID, ct_small.SeriesInstanceUID, ct_small.SOPInstanceUID)
        assert str(ct_small.SOPInstanceUID) in archive.instance_uids(ct_small.StudyInstanceUID)
    assert back.pixel_array.tobytes() == ct_small.pixel_array.tobytes()


def test_the_real_archive_refuses_missing_and_wrong_credentials_with_401(orthanc, monkeypatch, ct_small):
    with pytest.raises(ArchiveUnauthorized) as missing:
        DicomwebArchive(orthanc.dicomweb_url, **FAST).store(ct_small)
    assert missing.value.status == 401
    monkeypatch.setenv("IMAGING_DICOMWEB_USER", orthanc.username)
    monkeypatch.setenv("IMAGING_DICOMWEB_PASSWORD", SECRET)
    with pytest.raises(ArchiveUnauthorized) as wrong:
        DicomwebArchive(orthanc.dicomweb_url, **FAST).store(ct_small)
    assert wrong.value.status == 401 and SECRET not in str(wrong.value) and SECRET not in repr(wrong.value)


def test_bad_requests_to_the_real_archive_are_refused_4xx(orthanc, monkeypatch):
    monkeypatch.setenv("IMAGING_DICOMWEB_USER", orthanc.username)
    monkeypatch.setenv("IMAGING_DICOMWEB_PASSWORD", orthanc.password)
    archive = DicomwebArchive(orthanc.dicomweb_url, **FAST)
    with pytest.raises(ArchiveRefused) as missing:
        archive.retrieve_instance("1.2.3", "1.2.3.4", "1.2.3.4.5")
    assert missing.value.status == 404
    with pytest.raises(ValueError, match="not a DICOM UID"):
        archive.retrieve_instance("1.2.3/../../system", "1.2", "1.3")


def test_a_stopped_archive_is_unavailable_after_retries(orthanc, monkeypatch, ct_small):
    monkeypatch.setenv("IMAGING_DICOMWEB_USER", orthanc.username)
    monkeypatch.setenv("IMAGING_DICOMWEB_PASSWORD", orthanc.password)
    archive = DicomwebArchive(orthanc.dicomweb_url, **FAST)
    with orthanc.stopped(), pytest.raises(ArchiveUnavailable, match="after 3 attempts"):
        archive.store(ct_small)
    archive.store(ct_small)  # up again


# ---------------------------------------------------------------------------- scripted faults
def test_a_slow_archive_times_out_after_each_attempt(ct_small):
    with ScriptedServer(Answer(delay=1.5, body=b"{}")) as server:
        archive = DicomwebArchive(server.url, attempts=2, backoff=0.01, timeout=(1.0, 0.3))
        with pytest.raises(ArchiveUnavailable, match=r"no answer within 0.3 s after 2 attempts"):
            archive.store(ct_small)
    assert len(server.received) == 2


def test_503_is_retried_with_backoff_until_the_archive_stores(ct_small):
    stored = stow_answer(ct_small.SOPClassUID, ct_small.SOPInstanceUID)
    script = [Answer(503, b"busy", "text/plain", headers={"Retry-After": "0"}), Answer(503), Answer(200, stored)]
    with ScriptedServer(*script) as server:
        DicomwebArchive(server.url, **FAST).store(ct_small)
    assert [r.method for r in server.received] == ["POST"] * 3
    assert server.received[0].path == "/dicom-web/studies"
    assert server.received[0].headers["Content-Type"].startswith("multipart/related")
    assert _encoded(ct_small)[128:] in server.received[-1].body  # the instance itself travelled


@pytest.mark.parametrize(
    ("status", "message", "attempts"),
    [(500, "HTTP 500: database locked after 3 attempts", 3), (501, "HTTP 501: database locked$", 1)],
    ids=["transient: retried", "not implemented: at once"],
)
def test_a_5xx_is_a_server_error_retried_when_it_may_pass(ct_small, status, message, attempts):
    with (
        ScriptedServer(Answer(status, b"database locked", "text/plain")) as server,
        pytest.raises(ArchiveServerError, match=message) as caught,
    ):
        DicomwebArchive(server.url, **FAST).store(ct_small)
    assert caught.value.status == status and len(server.received) == attempts


@pytest.mark.parametrize("status", [400, 404, 409, 413])
def test_4xx_is_refused_at_once(ct_small, status):
    with (
        ScriptedServer(Answer(status, b'{"Message": "no"}', "application/json")) as server,
        pytest.raises(ArchiveRefused) as caught,
    ):
        DicomwebArchive(server.url, **FAST).store(ct_small)
    assert caught.value.status == status and len(server.received) == 1
    assert not isinstance(caught.value, ArchiveUnauthorized)


def test_a_stow_answer_listing_a_failure_is_refused(ct_small):
    failed = stow_answer(ct_small.SOPClassUID, ct_small.SOPInstanceUID, failed=True)
    with ScriptedServer(Answer(200, failed)) as server, pytest.raises(ArchiveRefused, match="did not store"):
        DicomwebArchive(server.url, **FAST).store(ct_small)


def test_a_truncated_stow_answer_is_invalid(ct_small):
    whole = stow_answer(ct_small.SOPClassUID, ct_small.SOPInstanceUID)
    with (
        ScriptedServer(Answer(200, whole[: len(whole) // 2])) as server,
        pytest.raises(ArchiveResponseInvalid, match="after 3 attempts"),
    ):
        DicomwebArchive(server.url, **FAST).store(ct_small)


def test_a_multipart_body_without_its_closing_boundary_is_truncated(ct_small):
    cut = multipart([_encoded(ct_small)], close=False)
    content_type = 'multipart/related; type="application/dicom"; boundary=imaging-lab-boundary'
    with ScriptedServer(Answer(200, cut, content_type)) as server:
        archive = DicomwebArchive(server.url, **FAST)
        with pytest.raises(ArchiveResponseInvalid, match="closing boundary"):
            archive.retrieve_instance("1.2.3", "1.2.3.4", "1.2.3.4.5")
    assert len(server.received) == 3  # a cut body is retried


def test_a_connection_closed_before_the_declared_length_is_truncated(ct_small):
    whole = multipart([_encoded(ct_small)])
    content_type = 'multipart/related; type="application/dicom"; boundary=imaging-lab-boundary'
    answer = Answer(200, whole[:4000], content_type, declared_length=len(whole))
    with ScriptedServer(answer) as server, pytest.raises(ArchiveResponseInvalid, match="cut short"):
        DicomwebArchive(server.url, **FAST).retrieve_instance("1.2.3", "1.2.3.4", "1.2.3.4.5")


def test_a_whole_multipart_body_splits_into_its_parts_exactly(ct_small):
    data = _encoded(ct_small)
    parts = split_multipart(
        multipart([data, b"\r\n--not-a-boundary\r\n"]), 'multipart/related; boundary="imaging-lab-boundary"', "x"
    )
    assert parts == [data, b"\r\n--not-a-boundary\r\n"]
    with pytest.raises(ArchiveResponseInvalid, match="multipart/related"):
        split_multipart(data, "application/dicom", "x")


def test_bearer_tokens_travel_in_the_authorization_header_only(monkeypatch, ct_small):
    monkeypatch.setenv("IMAGING_DICOMWEB_TOKEN", SECRET)
    with (
        ScriptedServer(Answer(401, b"who are you", "text/plain")) as server,
        pytest.raises(ArchiveUnauthorized) as caught,
    ):
        DicomwebArchive(server.url, **FAST).store(ct_small)
    assert server.received[0].headers["Authorization"] == f"Bearer {SECRET}"
    assert SECRET not in server.received[0].path and SECRET not in str(caught.value)
