"""The de-identification key lives outside the data: a 0600 key file made once, a fingerprint in the store."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from imaging_lib import sample_data
from imaging_lib.cli import main
from imaging_lib.deid import Pseudonymizer
from imaging_lib.deid.key import DeidKey, create_key_file, key_file_path, load_key, read_key_file
from imaging_lib.errors import KeyExists, KeyFileUnsafe, KeyInStore, KeyMismatch
from imaging_lib.ingestion import ingest
from imaging_lib.ingestion.key_binding import bind_key_to_store
from imaging_lib.store import layout
from imaging_lib.store.objects import Store

SECRET_A = "first-project-key-0123456789abcdef"
SECRET_B = "second-project-key-fedcba9876543210"


@pytest.fixture
def own_config(tmp_path, monkeypatch):
    """No key in the environment; the user configuration folder is a fresh one."""
    monkeypatch.delenv("IMAGING_DEID_SECRET", raising=False)
    monkeypatch.delenv("IMAGING_DEID_KEY_FILE", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path / "config" / "imaging-lab" / "deid.key"


def test_the_key_file_is_made_once_in_the_user_config_folder_with_mode_0600(own_config):
    assert key_file_path() == own_config and not own_config.exists()
    key = load_key()
    assert own_config.exists() and key.origin == str(own_config)
    assert stat.S_IMODE(own_config.stat().st_mode) == 0o600
    assert stat.S_IMODE(own_config.parent.stat().st_mode) == 0o700
    assert len(key.secret) == 64 and int(key.secret, 16)  # 32 random bytes as hex
    assert load_key().secret == key.secret  # read again, not made again
    assert [p.name for p in own_config.parent.iterdir()] == ["deid.key"]  # no temporary file left


def test_a_key_file_others_may_read_is_refused(own_config):
    load_key()
    own_config.chmod(0o644)
    with pytest.raises(KeyFileUnsafe, match="chmod 600") as info:
        load_key()
    assert str(own_config) in str(info.value) and "0644" in str(info.value)
    own_config.chmod(0o600)
    own_config.write_bytes(b"short\n")
    with pytest.raises(KeyFileUnsafe, match="at least 16"):
        load_key()
    own_config.unlink()
    own_config.mkdir()
    with pytest.raises(KeyFileUnsafe, match="not a regular file"):
        load_key()


def test_the_environment_and_the_argument_win_over_the_key_file(own_config, monkeypatch):
    from_file = load_key()
    monkeypatch.setenv("IMAGING_DEID_SECRET", SECRET_A)
    assert load_key().secret == SECRET_A.encode() and load_key().origin == "$IMAGING_DEID_SECRET"
    assert load_key(SECRET_B).secret == SECRET_B.encode()
    monkeypatch.setenv("IMAGING_DEID_SECRET", "short")
    with pytest.raises(ValueError, match="16 bytes"):
        load_key()
    monkeypatch.delenv("IMAGING_DEID_SECRET")
    assert load_key().secret == from_file.secret


def test_creating_the_key_file_is_exclusive(tmp_path):
    path = tmp_path / "keys" / "deid.key"
    assert create_key_file(path, b"a" * 32) is True
    assert create_key_file(path, b"b" * 32) is False
    assert read_key_file(path) == b"a" * 32


_RACER = textwrap.dedent(
    """
    import os, sys, time
    from imaging_lib.deid.key import load_key
    go = sys.argv[1]
    while not os.path.exists(go):
        time.sleep(0.0005)
    print(load_key().fingerprint)
    """
)


def test_processes_racing_to_create_the_key_end_with_one_key(tmp_path, own_config):
    go = tmp_path / "go"
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    racers = [
        subprocess.Popen([sys.executable, "-c", _RACER, str(go)], stdout=subprocess.PIPE, text=True, env=environment)
        for _ in range(6)
    ]
    time.sleep(1.5)  # let every racer reach its wait loop
    go.touch()
    fingerprints = {racer.communicate(timeout=60)[0].strip() for racer in racers}
    assert all(racer.returncode == 0 for racer in racers)
    assert fingerprints == {DeidKey(read_key_file(own_config), "file").fingerprint}
    assert [p.name for p in own_config.parent.iterdir()] == ["deid.key"]


def test_the_store_keeps_a_fingerprint_and_refuses_another_key_before_writing(store):
    first = ingest(sample_data.pydicom_file("CT_small.dcm"), store, secret=SECRET_A, progress=False)
    assert len(first.ingested) == 1
    record = store.read_json(layout.deid_key_fingerprint_key())
    assert record["fingerprint"] == DeidKey(SECRET_A.encode(), "test").fingerprint
    before = store.read_many(store.list())
    with pytest.raises(KeyMismatch, match="second set of pseudonyms") as info:
        ingest(sample_data.pydicom_file("MR_small.dcm"), store, secret=SECRET_B, progress=False)
    assert DeidKey(SECRET_B.encode(), "x").fingerprint[:12] in str(info.value)
    assert store.read_many(store.list()) == before  # nothing written
    again = ingest(sample_data.pydicom_file("MR_small.dcm"), store, secret=SECRET_A, progress=False)
    assert len(again.ingested) == 1


def test_two_first_ingests_racing_record_one_fingerprint(tmp_path):
    store = Store(tmp_path / "store")
    bind_key_to_store(store, DeidKey(SECRET_A.encode(), "a"))
    with pytest.raises(KeyMismatch):  # the second key finds the first one's fingerprint, exclusively created
        bind_key_to_store(store, DeidKey(SECRET_B.encode(), "b"))
    with pytest.raises(KeyExists):  # the fingerprint is created once and never replaced
        store.create_json(layout.deid_key_fingerprint_key(), {"fingerprint": "other"})


def test_an_old_store_with_its_key_inside_is_refused_and_the_key_moved_out(own_config, tmp_path, capsys):
    old_secret = "0123456789abcdef" * 4
    store = Store(tmp_path / "old-store")
    store.write_bytes(layout.LEGACY_DEID_SECRET_KEY, old_secret.encode())
    with pytest.raises(KeyInStore) as info:
        ingest(sample_data.pydicom_file("CT_small.dcm"), store, progress=False)
    message = str(info.value)
    assert f"imaging-lab key move-out-of-store --store {store.url}" in message
    assert str(own_config) in message and "0600" in message
    assert store.list() == [layout.LEGACY_DEID_SECRET_KEY]  # refused before anything was written

    assert main(["key", "move-out-of-store", "--store", store.url]) == 0
    assert "fingerprint" in capsys.readouterr().out
    assert read_key_file(own_config) == old_secret.encode()
    assert stat.S_IMODE(own_config.stat().st_mode) == 0o600
    assert not store.exists(layout.LEGACY_DEID_SECRET_KEY)
    summary = ingest(sample_data.pydicom_file("CT_small.dcm"), store, progress=False)
    reference = ingest(
        sample_data.pydicom_file("CT_small.dcm"), tmp_path / "reference", secret=old_secret, progress=False
    )
    assert summary.studies == reference.studies  # the same pseudonyms as before the move


def test_no_key_material_in_the_store_records_or_reprs(own_config, tmp_path):
    key = load_key()
    store = Store(tmp_path / "store")
    summary = ingest([sample_data.pydicom_file("CT_small.dcm"), ("junk.dcm", b"junk" * 40)], store, progress=False)
    assert summary.ingested and summary.quarantined
    forms = [key.secret, key.secret.hex().encode(), key.secret.decode().upper().encode()]
    for name, data in store.read_many(store.list()).items():
        assert not any(form in data for form in forms), name
    shown = [repr(key), str(key), repr(Pseudonymizer(key.secret)), str(summary), repr(summary), repr(store)]
    assert not any(key.secret.decode() in text for text in shown)


_AUDITED_INGEST = textwrap.dedent(
    """
    import logging, sys
    started = []
    def audit(event, args):
        if event in ("subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.system", "os.startfile"):
            started.append(repr(args))
    sys.addaudithook(audit)
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    from imaging_lib.cli import main
    status = main(["ingest", sys.argv[1], "--store", sys.argv[2]])
    with open("/proc/self/cmdline", "rb") as handle:
        started.append(repr(handle.read()))
    print("STARTED", started)
    sys.exit(status)
    """
)


def test_no_key_material_in_logs_or_argv_of_anything_started(own_config, tmp_path):
    key = load_key()
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", _AUDITED_INGEST, str(sample_data.pydicom_file("MR_small.dcm")), str(tmp_path / "s")],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ingested 1 file(s)" in done.stdout and "STARTED" in done.stdout
    output = done.stdout + done.stderr
    assert "DEBUG" in output  # the libraries did log
    assert key.secret.decode() not in output
