"""Wall-clock timing shared by the benchmarks (run as ``python bench/bench_*.py``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def repeat_times(function: Callable[[], Any], repeats: int) -> list[float]:
    """Seconds taken by each of ``repeats`` calls of ``function``, after one warm-up call."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def job_measures(job: Any, store: Any, n_workers: int) -> dict[str, float]:
    """Wall time, items per minute, summed task seconds and Dask overhead of a finished job.

    The overhead is ``1 - sum(task seconds) / (wall * workers)``: the share of the workers'
    time not spent in the tasks.
    """
    record = store.read_json(f"records/jobs/{job.job_id}.json")
    wall = job.elapsed_seconds
    compute = sum(entry["seconds"] for entry in record["items"].values())
    return {
        "wall": wall,
        "per_minute": 60.0 * len(record["items"]) / wall,
        "compute": compute,
        "overhead": 1.0 - compute / (wall * n_workers),
    }
