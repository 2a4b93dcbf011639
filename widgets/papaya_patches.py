"""Patches of a 0/1 mask between the PapayaViewer's page and Python: the changed voxels, as runs.

A patch names the voxels of a mask that change and their new values. Voxels are flat
indices in the volume's NIfTI order (``i`` fastest: ``i + ni * (j + nj * k)``, what
:func:`imaging_lib.store.masks.apply_voxel_diff` calls ``order="F"``), grouped into
*runs*: ``(start, length)`` pairs of consecutive indices that take one value. A brush
stroke's voxels lie in a few hundred runs (one per row of the stroke), so a patch takes
about one byte per nine changed voxels, and a scattered diff at worst nine bytes per
voxel. On the wire a part is a JSON header and two buffers: the runs as little-endian
``uint32`` pairs and one ``uint8`` value per run; a patch of more than
:data:`MAX_RUNS_PER_PART` runs is cut into parts under
:data:`~widgets.papaya_encoding.CHUNK_BYTES` (the stock websocket limit is 10 MiB).

Everything here reads what a page sent as untrusted: :func:`read_patch_part` checks every
field, the buffers' sizes, the runs' order and bounds and the values (0 or 1) before
anything is applied, and :class:`PatchAssembly` joins the parts of one patch in order,
within :data:`imaging_lib.limits.VIEWER_PATCH_MAX_BYTES`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from imaging_lib.errors import InvalidLabel
from imaging_lib.limits import VIEWER_PATCH_MAX_BYTES

from .papaya_encoding import CHUNK_BYTES

__all__ = [
    "EDIT_TOOLS",
    "MAX_RUNS_PER_PART",
    "RUN_BYTES",
    "PatchAssembly",
    "PatchPart",
    "indices_from_runs",
    "patch_messages",
    "read_patch_part",
    "runs_from_indices",
]

RUN_BYTES = 9
"""Bytes of one run on the wire: start and length (``uint32`` each) and its value (``uint8``)."""

MAX_RUNS_PER_PART = CHUNK_BYTES // RUN_BYTES
"""Most runs in one message, so that no message exceeds :data:`CHUNK_BYTES`."""

EDIT_TOOLS = ("brush", "eraser", "fill", "interpolate")
"""What may draw in the viewer's edit mode (a page's patch names one; Python's own are ``"python"``)."""

SOURCE = "<viewer patch>"


def runs_from_indices(indices: Any, values: Any) -> tuple[np.ndarray, np.ndarray]:
    """Group sorted flat indices and their values into runs.

    Parameters
    ----------
    indices : array_like of int
        Increasing flat indices, each at most once.
    values : array_like of int
        Their new values, one per index.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``(n, 2)`` ``uint32`` runs ``(start, length)`` and ``(n,)`` ``uint8`` values.
    """
    flat = np.asarray(indices, dtype=np.int64).reshape(-1)
    new = np.asarray(values, dtype=np.uint8).reshape(-1)
    if flat.size == 0:
        return np.zeros((0, 2), np.uint32), np.zeros(0, np.uint8)
    breaks = np.flatnonzero((np.diff(flat) != 1) | (np.diff(new.astype(np.int16)) != 0)) + 1
    starts = np.concatenate(([0], breaks))
    lengths = np.diff(np.concatenate((starts, [flat.size])))
    runs = np.stack([flat[starts], lengths], axis=1).astype(np.uint32)
    return runs, new[starts]


def indices_from_runs(runs: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The flat indices (``int64``) and values (``uint8``) that runs name, in order."""
    starts = runs[:, 0].astype(np.int64)
    lengths = runs[:, 1].astype(np.int64)
    total = int(lengths.sum())
    offsets = np.repeat(np.cumsum(lengths) - lengths, lengths)
    indices = np.repeat(starts, lengths) + (np.arange(total, dtype=np.int64) - offsets)
    return indices, np.repeat(values.astype(np.uint8), lengths)


def patch_messages(
    runs: np.ndarray, values: np.ndarray, header: Mapping[str, Any]
) -> Iterator[tuple[dict[str, Any], list[memoryview]]]:
    """Cut a patch into messages of at most :data:`MAX_RUNS_PER_PART` runs (one, if it is empty).

    Yields
    ------
    (dict, list of memoryview)
        ``header`` with ``part``, ``parts`` and ``runs`` (the part's run count), and the
        part's runs (little-endian ``uint32`` pairs) and values.
    """
    runs = np.ascontiguousarray(runs, dtype="<u4")
    values = np.ascontiguousarray(values, dtype=np.uint8)
    parts = max(1, -(-len(runs) // MAX_RUNS_PER_PART))
    for part in range(parts):
        piece = slice(part * MAX_RUNS_PER_PART, (part + 1) * MAX_RUNS_PER_PART)
        content = {**header, "part": part, "parts": parts, "runs": len(runs[piece])}
        buffers = [runs[piece].view(np.uint8).reshape(-1), values[piece]]
        yield content, [memoryview(buffer) for buffer in buffers]  # type: ignore[arg-type]  # numpy arrays are buffers


@dataclass(frozen=True)
class PatchPart:
    """One checked part of a page's patch.

    Attributes
    ----------
    layer : str
        The overlay's layer id.
    version : int
        The layer's data version the page holds.
    base, revision : int
        The mask's revision the patch applies to, and the one it makes.
    tool : str
        One of :data:`EDIT_TOOLS`.
    origin : str
        The page that sent it (echoed back, so each page knows its own patches).
    part, parts : int
        This part's number and the patch's number of parts.
    runs : numpy.ndarray
        ``(n, 2)`` ``uint32`` runs, increasing and disjoint, within the mask.
    values : numpy.ndarray
        ``(n,)`` ``uint8`` values, each 0 or 1.
    """

    layer: str
    version: int
    base: int
    revision: int
    tool: str
    origin: str
    part: int
    parts: int
    runs: np.ndarray
    values: np.ndarray


def _integer(content: Mapping[str, Any], name: str, low: int, high: int) -> int:
    value = content.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidLabel(SOURCE, f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return value


def _text(content: Mapping[str, Any], name: str, limit: int = 64) -> str:
    value = content.get(name)
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise InvalidLabel(SOURCE, f"{name} must be text of 1 to {limit} characters")
    return value


def read_patch_part(content: Mapping[str, Any], buffers: list[Any], voxels: int) -> PatchPart:
    """Check one part of a page's patch against a mask of ``voxels`` voxels.

    Parameters
    ----------
    content : mapping
        The message: ``layer``, ``version``, ``base``, ``revision``, ``tool``, ``origin``,
        ``part``, ``parts`` and ``runs``.
    buffers : list of bytes-like
        The runs (``8 * runs`` bytes) and values (``runs`` bytes).
    voxels : int
        Size of the mask.

    Returns
    -------
    PatchPart

    Raises
    ------
    InvalidLabel
        Any field missing or of the wrong type or range, buffers of another size, runs
        that are empty, out of the mask, overlapping or not increasing, values other than
        0 and 1.
    """
    most = 2**31
    base = _integer(content, "base", 0, most)
    parts = _integer(content, "parts", 1, VIEWER_PATCH_MAX_BYTES // (RUN_BYTES * MAX_RUNS_PER_PART) + 1)
    tool = _text(content, "tool")
    if tool not in EDIT_TOOLS:
        raise InvalidLabel(SOURCE, f"tool must be one of {', '.join(EDIT_TOOLS)}, got {tool!r}")
    count = _integer(content, "runs", 0, MAX_RUNS_PER_PART)
    if len(buffers) != 2:
        raise InvalidLabel(SOURCE, f"a patch part carries 2 buffers (runs, values), got {len(buffers)}")
    run_bytes, value_bytes = (memoryview(buffer).cast("B") for buffer in buffers)
    if run_bytes.nbytes != 8 * count or value_bytes.nbytes != count:
        raise InvalidLabel(
            SOURCE, f"{count} runs need {8 * count} + {count} bytes, got {run_bytes.nbytes} + {value_bytes.nbytes}"
        )
    runs = np.frombuffer(run_bytes, dtype="<u4").reshape(count, 2).astype(np.int64)
    values = np.frombuffer(value_bytes, dtype=np.uint8).copy()
    if count:
        starts, ends = runs[:, 0], runs[:, 0] + runs[:, 1]
        if runs[:, 1].min() < 1 or int(ends.max()) > voxels:
            raise InvalidLabel(SOURCE, f"runs must hold at least one voxel and lie in the mask's {voxels} voxels")
        if np.any(starts[1:] < ends[:-1]):
            raise InvalidLabel(SOURCE, "runs must be increasing and must not overlap")
        if int(values.max()) > 1:
            raise InvalidLabel(SOURCE, "an edited mask holds 0 and 1 only")
    return PatchPart(
        layer=_text(content, "layer"),
        version=_integer(content, "version", 1, most),
        base=base,
        revision=_integer(content, "revision", base + 1, base + 1),
        tool=tool,
        origin=_text(content, "origin"),
        part=_integer(content, "part", 0, parts - 1),
        parts=parts,
        runs=runs.astype(np.uint32),
        values=values,
    )


@dataclass
class PatchAssembly:
    """The parts of one patch as they arrive, in order, within the mask and the byte bound."""

    first: PatchPart
    parts: list[PatchPart] = field(default_factory=list)
    nbytes: int = 0

    def add(self, part: PatchPart) -> bool:
        """Keep the next part; True once the patch is complete.

        Raises
        ------
        InvalidLabel
            A part of another patch or out of order, runs that go back, or a patch over
            :data:`~imaging_lib.limits.VIEWER_PATCH_MAX_BYTES`.
        """
        same = (part.layer, part.version, part.base, part.revision, part.tool, part.origin, part.parts)
        first = self.first
        if same != (first.layer, first.version, first.base, first.revision, first.tool, first.origin, first.parts):
            raise InvalidLabel(SOURCE, "a part of another patch arrived before this one was complete")
        if part.part != len(self.parts):
            raise InvalidLabel(SOURCE, f"part {part.part} arrived where part {len(self.parts)} was due")
        if self.parts and len(part.runs) and len(self.parts[-1].runs):
            last = self.parts[-1].runs[-1]
            if int(part.runs[0, 0]) < int(last[0]) + int(last[1]):
                raise InvalidLabel(SOURCE, "runs must be increasing and must not overlap")
        self.nbytes += RUN_BYTES * len(part.runs)
        if self.nbytes > VIEWER_PATCH_MAX_BYTES:
            raise InvalidLabel(SOURCE, f"a patch may take at most {VIEWER_PATCH_MAX_BYTES} bytes")
        self.parts.append(part)
        return len(self.parts) == part.parts

    def diff(self) -> tuple[np.ndarray, np.ndarray]:
        """The whole patch as flat indices and values."""
        runs = np.concatenate([part.runs for part in self.parts])
        values = np.concatenate([part.values for part in self.parts])
        return indices_from_runs(runs, values)
