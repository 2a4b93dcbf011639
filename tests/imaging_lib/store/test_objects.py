"""The store on a local folder and on a real GCS emulator: atomic writes, safe keys, fresh listings."""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import subprocess
import sys
import threading

import numpy as np
import pytest

from imaging_lib.errors import KeyExists, MissingRecord, UnreadableRecord
from imaging_lib.store.objects import Store
from imaging_lib.volume import Volume


def test_bytes_json_and_volume_round_trip(store):
    store.write_bytes("a/b.bin", b"\x00\x01payload")
    store.write_json("records/studies/s1.json", {"study_uid": "s1", "shape": [2, 3, 4]})
    volume = Volume(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.diag([0.5, 0.7, 2.0, 1.0]))
    store.write_volume("volumes/s1/v.nii.gz", volume)

    assert store.read_bytes("a/b.bin") == b"\x00\x01payload"
    assert store.read_json("records/studies/s1.json") == {"study_uid": "s1", "shape": [2, 3, 4]}
    back = store.read_volume("volumes/s1/v.nii.gz")
    np.testing.assert_array_equal(back.array, volume.array)
    np.testing.assert_allclose(back.affine, volume.affine)
    assert store.exists("a/b.bin") and not store.exists("a/c.bin")
    assert store.list() == ["a/b.bin", "records/studies/s1.json", "volumes/s1/v.nii.gz"]


def test_list_by_folder_and_by_name_prefix(store):
    for key in ["raw/s1/a.dcm", "raw/s1/b.dcm", "raw/s12/c.dcm", "records/x.json"]:
        store.write_bytes(key, b"x")
    assert store.list("raw/") == ["raw/s1/a.dcm", "raw/s1/b.dcm", "raw/s12/c.dcm"]
    assert store.list("raw/s1/") == ["raw/s1/a.dcm", "raw/s1/b.dcm"]
    assert store.list("raw/s1") == ["raw/s1/a.dcm", "raw/s1/b.dcm", "raw/s12/c.dcm"]
    assert store.list("nothing/") == []


def test_missing_key_raises_missing_record_naming_it(store):
    with pytest.raises(MissingRecord, match="records/none.json") as caught:
        store.read_json("records/none.json")
    assert isinstance(caught.value, KeyError)
    with pytest.raises(MissingRecord):
        store.delete("records/none.json")
    store.write_bytes("a.json", b"{}")
    with pytest.raises(MissingRecord, match="b.json"):
        store.read_many(["a.json", "b.json"])


def test_corrupt_json_is_a_typed_error(store):
    store.write_bytes("records/bad.json", b"{not json")
    with pytest.raises(UnreadableRecord, match="records/bad.json"):
        store.read_json("records/bad.json")


def test_read_json_many_returns_every_record(store):
    keys = [f"records/results/s{i}/m.json" for i in range(30)]
    for i, key in enumerate(keys):
        store.write_json(key, {"i": i})
    found = store.read_json_many(reversed(keys))
    assert found == {key: {"i": i} for i, key in enumerate(keys)}
    assert list(found) == list(reversed(keys))
    assert store.read_json_many(keys[:2] + ["records/gone.json"], skip_missing=True) == {
        keys[0]: {"i": 0},
        keys[1]: {"i": 1},
    }


@pytest.mark.parametrize(
    "key",
    ["../escape", "a/../../escape", "/etc/passwd", "a//b", "a/./b", "a/.hidden", ".tmp-x", "a b", "a\\b", "", "é/x"],
)
def test_bad_keys_are_refused_and_write_nothing(store, key, tmp_path):
    with pytest.raises(ValueError, match="key"):
        store.write_bytes(key, b"x")
    with pytest.raises(ValueError):
        store.read_bytes(key)
    assert store.list() == []
    assert not (tmp_path / "escape").exists()


def test_interrupted_write_keeps_the_previous_version(store):
    store.write_bytes("records/r.json", b"version 1")
    with pytest.raises(RuntimeError, match="crash"), store.open_write("records/r.json") as handle:
        handle.write(b"version 2, half written")
        raise RuntimeError("crash in the middle of a write")
    assert store.read_bytes("records/r.json") == b"version 1"
    assert store.list() == ["records/r.json"]
    if store.is_local:  # no temporary file left behind either
        assert os.listdir(os.path.join(store.url, "records")) == ["r.json"]


def test_failed_first_write_leaves_no_object(store):
    with pytest.raises(ZeroDivisionError), store.open_write("volumes/new.nii.gz") as handle:
        handle.write(b"partial")
        1 / 0
    assert not store.exists("volumes/new.nii.gz")
    assert store.list() == []


def test_concurrent_writers_and_readers_see_only_whole_objects(store):
    versions = [bytes([n]) * (256 * 1024 + n) for n in range(4)]
    store.write_bytes("shared/object.bin", versions[0])
    seen: list[bytes] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def write(n: int) -> None:
        try:
            for _ in range(5):
                store.write_bytes("shared/object.bin", versions[n])
        except BaseException as exc:  # reported below
            errors.append(exc)

    def read() -> None:
        while not stop.is_set():
            seen.append(store.read_bytes("shared/object.bin"))

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    reader.join()
    assert not errors
    assert seen and all(data in versions for data in seen)
    assert store.read_bytes("shared/object.bin") in versions
    assert store.list() == ["shared/object.bin"]


def test_create_writes_only_where_no_object_is(store):
    store.create_json("records/labels/s/v000001.json", {"by": "first"})
    with pytest.raises(KeyExists, match="already exists"):
        store.create_json("records/labels/s/v000001.json", {"by": "second"})
    with pytest.raises(KeyExists):
        store.create_bytes("records/labels/s/v000001.json", b"anything")
    assert store.read_json("records/labels/s/v000001.json") == {"by": "first"}
    store.create_json("records/labels/s/v000002.json", {"by": "second"})
    assert store.list() == ["records/labels/s/v000001.json", "records/labels/s/v000002.json"]


def test_of_concurrent_creators_of_one_key_exactly_one_wins(tmp_path):
    store = Store(tmp_path / "store")
    barrier = threading.Barrier(8)
    won: list[int] = []

    def create(n: int) -> None:
        barrier.wait()
        try:
            store.create_bytes("records/labels/s/v000002.json", bytes([n]) * 4096)
            won.append(n)
        except KeyExists:
            pass

    threads = [threading.Thread(target=create, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
    assert store.read_bytes("records/labels/s/v000002.json") == bytes(won) * 4096
    assert os.listdir(tmp_path / "store" / "records" / "labels" / "s") == ["v000002.json"]  # no temporary left


@pytest.mark.slow
def test_fifty_megabyte_object(store):
    data = np.random.default_rng(0).integers(0, 256, 50 * 2**20 + 17, dtype=np.uint8).tobytes()
    store.write_bytes("big/object.bin", data)  # above gcsfs's 50 MiB single-request limit: a resumable upload
    back = store.read_bytes("big/object.bin")
    assert hashlib.sha256(back).digest() == hashlib.sha256(data).digest()


def test_listing_sees_objects_written_by_another_process(store):
    store.write_bytes("records/jobs/a.json", b"{}")
    assert store.list("records/jobs/") == ["records/jobs/a.json"]  # fills gcsfs's listing cache
    script = (
        "import sys; from imaging_lib.store import Store; Store(sys.argv[1]).write_bytes('records/jobs/b.json', b'{}')"
    )
    subprocess.run([sys.executable, "-c", script, store.url], check=True, env=os.environ.copy(), timeout=120)
    assert store.list("records/jobs/") == ["records/jobs/a.json", "records/jobs/b.json"]
    assert store.exists("records/jobs/b.json")


def test_store_pickles_as_its_url_and_reads_the_same_objects(store):
    store.write_bytes("k/v.bin", b"shipped to a worker")
    clone = pickle.loads(pickle.dumps(store))
    assert clone.url == store.url
    assert clone.read_bytes("k/v.bin") == b"shipped to a worker"


def test_credentials_never_show():
    store = Store("gs://bucket/prefix", token={"private_key": "SECRET-KEY-MATERIAL"})
    assert "SECRET" not in repr(store) and "SECRET" not in store.url
    assert store.url == "gs://bucket/prefix"
    with pytest.raises(ValueError, match="credentials"):
        Store("gs://user:password@bucket/prefix")


def test_default_store_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("IMAGING_STORE", str(tmp_path / "env-store"))
    assert Store().url == str(tmp_path / "env-store")
    monkeypatch.delenv("IMAGING_STORE")
    monkeypatch.chdir(tmp_path)
    assert Store().url == str(tmp_path / "data" / "store")


def test_full_path_names_the_object():
    store = Store("memory://full-path-test")
    store.write_bytes("a/b.json", b"{}")
    assert store.full_path("a/b.json") == "memory://full-path-test/a/b.json"
    gcs = Store("gs://bucket/prefix/")
    assert gcs.url == "gs://bucket/prefix"


@pytest.mark.parametrize("url", ["local", "memory"])
def test_create_is_exclusive_and_one_of_many_racing_writers_wins(url, tmp_path):
    # GCS enforces the same with ifGenerationMatch=0; gcp-storage-emulator ignores that precondition.
    store = Store(tmp_path / "store") if url == "local" else Store(f"memory://create-{os.getpid()}-{id(tmp_path)}")
    wins: list[int] = []

    def create(n: int) -> None:
        with contextlib.suppress(KeyExists):
            store.create_bytes("config/once.json", str(n).encode() * 1000)
            wins.append(n)

    threads = [threading.Thread(target=create, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(wins) == 1
    assert store.read_bytes("config/once.json") == str(wins[0]).encode() * 1000
    with pytest.raises(KeyExists):
        store.create_json("config/once.json", {"other": True})
    assert store.list() == ["config/once.json"]  # no temporary file left behind
