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
