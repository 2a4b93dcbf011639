"""The demo store for dashboard tests and benchmarks: the sample studies ingested, predicted, reported.

Built with :func:`imaging_lib.demo.prepare_demo` (what ``make demo`` runs), with fewer
LIME samples and HTML-only reports to keep the test session short.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["TEST_PARAMS", "build_demo_store"]

TEST_PARAMS = {"num_samples": 200}


def build_demo_store(folder: Path, client: Any, *, reports: bool = True) -> Any:
    """Prepare the demo in a store under ``folder`` on ``client``; return the store.

    Raises
    ------
    AssertionError
        If a study failed (the dashboards' tests need every sample study processed).
    """
    from imaging_lib.demo import prepare_demo
    from imaging_lib.store.objects import Store

    store = Store(Path(folder) / "store")
    outcome = prepare_demo(store, client, params=TEST_PARAMS, reports=reports, report_formats=("html",), progress=False)
    assert outcome.batch.counts["failed"] == 0, outcome.batch.errors
    assert outcome.reports is None or outcome.reports.counts["failed"] == 0, outcome.reports.errors
    return store
