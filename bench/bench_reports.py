"""Wall time of N study reports made one after another vs on 2 Dask workers, and where a report's time goes.

Set-up (not timed): the real brain DICOM series is ingested N times with N different
de-identification secrets, which gives N distinct studies of real data; a batch predicts and
explains them. Then, in one run:

(a) sequential: :func:`imaging_lib.reports.run_report` for each study in this process;
(b) parallel: :func:`imaging_lib.reports.run_reports` on a LocalCluster of 2 single-threaded
    process workers.

Each report is a fresh kernel executing the study template, an nbconvert HTML export without
code and a Chromium PDF. Both sides are warmed up first (one report in this process; on each
worker the report modules imported and the template exported once, which starts the worker's
browser).
The per-report split (kernel start, cell execution, export) is the mean over the sequential
reports.

Last line: ``reports_scaling_2w <sequential / parallel>`` (target: at least 1.6).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def _prepare_store(root: Path, studies: int, num_samples: int, client) -> tuple[object, list[str]]:
    """Ingest the brain series ``studies`` times and run the prediction batch on it."""
    from imaging_lib import sample_data
    from imaging_lib.ingestion.batch import ingest
    from imaging_lib.jobs import run_batch
    from imaging_lib.models import DEMO_MODEL_URI
    from imaging_lib.store.objects import Store

    store = Store(str(root / "store"))
    study_uids: set[str] = set()
    for copy in range(studies):
        summary = ingest(sample_data.brain_series(), store, secret=f"bench-reports-secret-{copy:04d}", progress=False)
        study_uids.update(entry["study_uid"] for entry in summary.ingested)
    job = run_batch(sorted(study_uids), store, DEMO_MODEL_URI, client=client, params={"num_samples": num_samples})
    job.wait()
    if job.counts["failed"]:
        raise RuntimeError(f"set-up batch failed: {job.errors}")
    return store, sorted(study_uids)


def _warm_up_worker() -> None:
    """Import the report modules and export the (unexecuted) study template to HTML and PDF once."""
    import nbformat
    import papermill  # noqa: F401 - importing is part of the warm-up

    from imaging_lib.reports import html_to_pdf, notebook_to_html, resolve_template

    template = nbformat.read(resolve_template("study"), as_version=4)
    with tempfile.TemporaryDirectory(prefix="bench-reports-warm-up-") as tmp:
        html_to_pdf(notebook_to_html(template, title="warm-up"), Path(tmp))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=6, help="number of study reports (default 6)")
    parser.add_argument("--num-samples", type=int, default=100, help="LIME samples in the set-up batch")
    args = parser.parse_args()

    from distributed import Client

    from imaging_lib.jobs import start_local_cluster
    from imaging_lib.reports import run_report, run_reports

    with tempfile.TemporaryDirectory(prefix="bench-reports-") as tmp:
        cluster = start_local_cluster(n_workers=2, threads_per_worker=1, dashboard_address="127.0.0.1:0")
        client = Client(cluster, set_as_default=False)
        try:
            store, study_uids = _prepare_store(Path(tmp), args.reports, args.num_samples, client)
            client.run(_warm_up_worker)
            run_report("study", {"study_uid": study_uids[0]}, store)  # warm-up of this process

            sequential_start = time.perf_counter()
            timings = [run_report("study", {"study_uid": uid}, store)["timings"] for uid in study_uids]
            sequential = time.perf_counter() - sequential_start

            parallel_start = time.perf_counter()
            job = run_reports(study_uids, store, client=client).wait()
            parallel = time.perf_counter() - parallel_start
            if job.counts["done"] != len(study_uids):
                raise RuntimeError(f"parallel reports failed: {job.errors}")
        finally:
            client.close()
            cluster.close()

    worker_timings = [summary["timings"] for summary in job.results.values()]
    print(f"reports: {len(study_uids)} study reports (notebook + HTML + PDF each)")
    for name in ("kernel_start", "execution", "export"):
        here = statistics.mean(t[name] for t in timings)
        there = statistics.mean(t[name] for t in worker_timings)
        print(f"per report {name:13} sequential {here:6.2f} s   on 2 workers {there:6.2f} s")
    print(f"sequential              {sequential:7.2f} s ({sequential / len(study_uids):.2f} s a report)")
    print(f"2 Dask workers          {parallel:7.2f} s ({parallel / len(study_uids):.2f} s a report)")
    print(f"reports_scaling_2w {sequential / parallel:.3f}")


if __name__ == "__main__":
    main()
