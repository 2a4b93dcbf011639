"""Mask patches on the wire: runs of flat indices, cut into parts, and every check on what a page sends."""

from __future__ import annotations

import numpy as np
import pytest

from imaging_lib.errors import InvalidLabel
from widgets import papaya_patches
from widgets.papaya_patches import (
    MAX_RUNS_PER_PART,
    RUN_BYTES,
    PatchAssembly,
    indices_from_runs,
    patch_messages,
    read_patch_part,
    runs_from_indices,
)

VOXELS = 1000
HEADER = {"type": "patch", "layer": "L", "version": 1, "base": 4, "revision": 5, "tool": "brush", "origin": "page-1"}


def test_runs_group_consecutive_indices_of_one_value_and_unpack_exactly():
    indices = np.array([3, 4, 5, 9, 10, 11, 12, 40])
    values = np.array([1, 1, 1, 1, 0, 0, 0, 1])
    runs, run_values = runs_from_indices(indices, values)
    assert runs.tolist() == [[3, 3], [9, 1], [10, 3], [40, 1]] and run_values.tolist() == [1, 1, 0, 1]
    back, back_values = indices_from_runs(runs, run_values)
    np.testing.assert_array_equal(back, indices)
    np.testing.assert_array_equal(back_values, values)
    empty_runs, empty_values = runs_from_indices([], [])
    assert empty_runs.shape == (0, 2) and empty_values.shape == (0,)


def test_a_brush_disk_takes_about_a_byte_per_nine_voxels_not_five_per_voxel():
    mask = np.zeros((200, 200, 10), np.uint8)
    i, j = np.ogrid[:200, :200]
    mask[..., 5] = (i - 100) ** 2 + (j - 100) ** 2 <= 20**2  # a 40-voxel disk
    indices = np.flatnonzero(mask.ravel(order="F"))
    runs, _ = runs_from_indices(indices, np.ones_like(indices))
    assert len(runs) == 41  # one run per row of the disk
    assert RUN_BYTES * len(runs) < indices.size / 3


def test_a_large_patch_is_cut_into_parts_that_each_stay_under_4_mib():
    runs = np.stack([np.arange(0, 3 * MAX_RUNS_PER_PART, 3), np.ones(MAX_RUNS_PER_PART)], axis=1)
    runs = np.concatenate([runs, [[3 * MAX_RUNS_PER_PART, 2]]]).astype(np.uint32)
    values = np.ones(len(runs), np.uint8)
    messages = list(patch_messages(runs, values, HEADER))
    assert [(m["part"], m["parts"], m["runs"]) for m, _ in messages] == [(0, 2, MAX_RUNS_PER_PART), (1, 2, 1)]
    for _content, buffers in messages:
        assert sum(b.nbytes for b in buffers) <= 4 * 1024**2
    voxels = 3 * MAX_RUNS_PER_PART + 2
    assembly = PatchAssembly(read_patch_part(*messages[0], voxels))
    assert assembly.add(assembly.first) is False
    assert assembly.add(read_patch_part(*messages[1], voxels)) is True
    indices, _ = assembly.diff()
    assert indices.size == MAX_RUNS_PER_PART + 2 and indices[-1] == voxels - 1


def _part(**changes):
    content, buffers = next(patch_messages(np.array([[10, 5], [20, 2]]), np.array([1, 0]), HEADER))
    content = {**content, **{k: v for k, v in changes.items() if k != "buffers"}}
    return content, changes.get("buffers", buffers)


def test_a_good_part_reads_back():
    part = read_patch_part(*_part(), VOXELS)
    assert (part.layer, part.base, part.revision, part.tool, part.origin) == ("L", 4, 5, "brush", "page-1")
    assert part.runs.tolist() == [[10, 5], [20, 2]] and part.values.tolist() == [1, 0]


def _runs_buffers(runs, values):
    return [np.asarray(runs, "<u4").tobytes(), np.asarray(values, np.uint8).tobytes()]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"revision": 7}, "revision"),
        ({"tool": "scissors"}, "tool"),
        ({"tool": 3}, "tool"),
        ({"origin": "x" * 65}, "origin"),
        ({"base": -1}, "base"),
        ({"base": True}, "base"),
        ({"part": 1}, "part"),
        ({"parts": 10**6}, "parts"),
        ({"runs": 3}, "bytes"),
        ({"buffers": [b"\0" * 16]}, "2 buffers"),
        ({"buffers": _runs_buffers([[10, 5], [990, 20]], [1, 1])}, "lie in the mask"),
        ({"buffers": _runs_buffers([[10, 5], [12, 2]], [1, 1])}, "overlap"),
        ({"buffers": _runs_buffers([[20, 5], [10, 2]], [1, 1])}, "increasing"),
        ({"buffers": _runs_buffers([[10, 0], [20, 2]], [1, 1])}, "at least one voxel"),
        ({"buffers": _runs_buffers([[10, 5], [20, 2]], [1, 2])}, "0 and 1"),
    ],
)
def test_anything_else_a_page_sends_is_refused_with_the_reason(changes, reason):
    with pytest.raises(InvalidLabel, match=reason):
        read_patch_part(*_part(**changes), VOXELS)


def test_parts_out_of_order_of_another_patch_or_going_back_are_refused(monkeypatch):
    monkeypatch.setattr(papaya_patches, "MAX_RUNS_PER_PART", 2)
    runs = np.array([[1, 1], [3, 1], [5, 1], [7, 1]])
    first, second = list(patch_messages(runs, np.ones(4, np.uint8), HEADER))
    assembly = PatchAssembly(read_patch_part(*first, VOXELS))
    assembly.add(assembly.first)
    with pytest.raises(InvalidLabel, match="another patch"):
        assembly.add(read_patch_part({**second[0], "revision": 6, "base": 5}, second[1], VOXELS))
    with pytest.raises(InvalidLabel, match="was due"):
        assembly.add(read_patch_part(*first, VOXELS))
    backwards = [np.array([[2, 1], [4, 1]], "<u4").tobytes(), b"\1\1"]
    with pytest.raises(InvalidLabel, match="increasing"):
        assembly.add(read_patch_part(second[0], backwards, VOXELS))
    monkeypatch.setattr(papaya_patches, "VIEWER_PATCH_MAX_BYTES", RUN_BYTES * 3)
    big = PatchAssembly(read_patch_part(*first, VOXELS))
    big.add(big.first)
    with pytest.raises(InvalidLabel, match="at most"):
        big.add(read_patch_part(*second, VOXELS))
