"""A store URL becomes a filesystem and a root; credentials never ride in the URL."""

from __future__ import annotations

import os

import pytest

from imaging_lib.errors import MissingDependency
from imaging_lib.store.filesystems import canonical_url, open_filesystem, reject_credentials_in_url


def test_canonical_urls_are_absolute_paths_or_protocol_and_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert canonical_url("data/store") == str(tmp_path / "data" / "store")
    assert canonical_url(f"file://{tmp_path}/s/") == str(tmp_path / "s")
    assert canonical_url("gcs://bucket/prefix/") == "gs://bucket/prefix"
    assert canonical_url("memory://name") == "memory://name"


@pytest.mark.parametrize("url", ["gs://user:password@bucket/prefix", "gs://token@bucket"])
def test_credentials_in_a_url_are_refused_without_echoing_them(url):
    with pytest.raises(ValueError, match="credentials") as refused:
        reject_credentials_in_url(url)
    assert "password" not in str(refused.value) and "token@" not in str(refused.value)
    reject_credentials_in_url("gs://bucket/prefix")  # no credentials: accepted


def test_local_and_memory_filesystems_and_their_roots(tmp_path):
    local, root = open_filesystem(str(tmp_path / "store"))
    assert local.protocol[0] == "file" and root == str(tmp_path / "store")
    local.makedirs(root, exist_ok=True)
    local.pipe(os.path.join(root, "a.txt"), b"x")
    assert (tmp_path / "store" / "a.txt").read_bytes() == b"x"
    memory, root = open_filesystem("memory://fs-test/prefix/")
    assert root == "/fs-test/prefix" and "memory" in memory.protocol


def test_gs_urls_open_gcsfs_anonymously_against_the_emulator(gcs_emulator):
    filesystem, root = open_filesystem("gs://bucket/prefix/")
    assert type(filesystem).__name__ == "GCSFileSystem" and root == "bucket/prefix"
    assert filesystem.credentials.method == "anon"


def test_an_unknown_protocol_names_what_is_missing():
    with pytest.raises(MissingDependency, match="no fsspec filesystem for nosuch://"):
        open_filesystem("nosuch://bucket/key")
