"""The streaming multipart parser: parts come out whole whatever the chunking, a cut body never passes, bounds hold."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imaging_lib.errors import ArchiveResponseInvalid
from imaging_lib.interop.multipart import iter_multipart, split_multipart
from support.scripted_http import multipart

CONTENT_TYPE = 'multipart/related; type="application/dicom"; boundary=imaging-lab-boundary'


def _chunks(body: bytes, size: int) -> list[bytes]:
    return [body[i : i + size] for i in range(0, len(body), size)]


PARTS = [os.urandom(5000), b"", b"\r\n--imaging-lab-boundar", b"--imaging-lab-boundary-not-quite\r\n", b"x" * 70_000]


@pytest.mark.parametrize("size", [1, 2, 7, 23, 1024, 1 << 20])
def test_parts_come_out_whole_whatever_the_chunk_size(size):
    assert list(iter_multipart(_chunks(multipart(PARTS), size), CONTENT_TYPE, "x")) == PARTS


@settings(max_examples=60, deadline=None)
@given(
    parts=st.lists(st.binary(max_size=300), min_size=1, max_size=5),
    cuts=st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=30),
)
def test_any_chunking_of_any_parts_round_trips(parts, cuts):
    body = multipart(parts)
    chunks, position = [], 0
    for cut in cuts:
        chunks.append(body[position : position + cut])
        position += cut
    chunks.append(body[position:])
    assert list(iter_multipart(chunks, CONTENT_TYPE, "x")) == parts


def test_a_preamble_and_an_epilogue_are_not_parts():
    body = b"preamble text\r\n" + multipart([b"one", b"two"]) + b"epilogue"
    assert split_multipart(body, CONTENT_TYPE, "x") == [b"one", b"two"]


@pytest.mark.parametrize(
    "cut", [10, 3000, 5060, -3], ids=["in the headers", "in a part", "at a delimiter", "in the close"]
)
def test_a_body_cut_anywhere_is_truncated_after_the_whole_parts_it_held(cut):
    body = multipart(PARTS[:2])
    received = []
    with pytest.raises(ArchiveResponseInvalid, match="closing boundary"):
        for part in iter_multipart(_chunks(body[:cut], 512), CONTENT_TYPE, "http://archive/dicom-web"):
            received.append(part)
    assert all(part in PARTS for part in received)  # only whole parts were handed over


def test_a_part_without_headers_block_is_malformed():
    body = b"--b\r\nContent-Type: application/dicom" + b"x" * 10 + b"\r\n--b--\r\n"
    with pytest.raises(ArchiveResponseInvalid, match="no blank line"):
        split_multipart(body, "multipart/related; boundary=b", "x")


def test_bounds_on_a_part_the_number_of_parts_and_the_body_are_checked_as_bytes_arrive():
    def endless():
        yield b"--imaging-lab-boundary\r\nContent-Type: application/dicom\r\n\r\n"
        while True:
            yield b"\0" * 4096

    with pytest.raises(ArchiveResponseInvalid, match="part exceeds the limit of 100000"):
        list(iter_multipart(endless(), CONTENT_TYPE, "x", max_part_bytes=100_000))
    with pytest.raises(ArchiveResponseInvalid, match="more than 3 parts"):
        list(iter_multipart([multipart([b"a"] * 4)], CONTENT_TYPE, "x", max_parts=3))
    with pytest.raises(ArchiveResponseInvalid, match="body exceeds the limit of 1000"):
        list(iter_multipart(_chunks(multipart([b"a" * 2000]), 100), CONTENT_TYPE, "x", max_total_bytes=1000))


@pytest.mark.parametrize("content_type", ["application/dicom", "multipart/related", "multipart/mixed; boundary=b"])
def test_a_body_that_is_not_multipart_related_with_a_boundary_is_refused(content_type):
    with pytest.raises(ArchiveResponseInvalid, match="multipart/related"):
        split_multipart(multipart([b"a"]), content_type, "x")
