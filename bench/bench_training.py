"""A 4-trial training sweep on 1 vs 2 single-threaded Dask workers, in one run.

Set-up (not timed): a temporary store of reviewed labels on slabs of real scans, half with
a synthetic lesion (``tests/support/training_store.py``: 12 studies, 12 patients). For each
worker count a fresh LocalCluster of process workers (one thread each) is started, and its
workers import torch and the trainer.

Timed: :func:`imaging_lib.jobs.run_training` of a 2 x 2 grid (learning rate x seed: four
trials of ``--epochs`` epochs of ``LesionCNN(width=16)`` on 224 x 224 slices), from
submission until the job record says finished, ``--repeats`` times per worker count,
alternating 1 and 2 workers, the best run of each counting. Each run is a new job, so it
trains from scratch (no checkpoint to resume). Printed for each worker count: wall time,
trials per minute, the sum of the trials' compute times and the Dask overhead
(``1 - sum(trial seconds) / (wall * workers)``). Then the ceiling this machine sets
(``_torch_steps``: the same network's forward and backward passes, no data and no Dask, on
2 workers at once vs 1) and the scaling ratio.

Last line: ``sweep_scaling_2w <trials/min on 2 workers / trials/min on 1 worker>``
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

PARAMS = {
    "architecture_params": {"width": 16, "num_classes": 2},
    "input_size": [224, 224],
    "batch_size": 16,
    "max_slices_per_study": 8,
    "patience": 0,
}


def _warm_up_worker() -> int:
    """Import torch and the trainer; return torch's intra-op threads."""
    import torch

    import imaging_lib.training.trial  # noqa: F401

    return torch.get_num_threads()


def _torch_steps(steps: int) -> float:
    """Seconds for ``steps`` forward and backward passes of the sweep's network: torch alone, no data, no Dask."""
    import time

    import torch

    from imaging_lib.models.lesion_cnn import LesionCNN

    torch.manual_seed(0)
    model = LesionCNN(PARAMS["architecture_params"]["width"], 2, batch_norm=True)
    optimiser = torch.optim.Adam(model.parameters())
    images = torch.rand(PARAMS["batch_size"], 3, *PARAMS["input_size"])
    started = time.perf_counter()
    for _ in range(steps):
        optimiser.zero_grad()
        model(images).sum().backward()
        optimiser.step()
    return time.perf_counter() - started


def machine_scaling(clients, steps: int = 40) -> float:
    """How much faster 2 workers do the same torch work as 1 on this machine: the ceiling of any sweep."""
    one = clients[1].submit(_torch_steps, steps, pure=False).result()
    workers = list(clients[2].scheduler_info()["workers"])
    futures = [clients[2].submit(_torch_steps, steps, workers=[w], pure=False) for w in workers]
    both = max(f.result() for f in futures)
    return 2 * one / both


def run_sweep_once(client, n_workers: int, store, trials) -> dict[str, float]:
    """Run the sweep once on ``client``; return its measures."""
    from imaging_lib.jobs import run_training

    job = run_training(store, trials, client=client).wait()
    if job.counts["done"] != len(trials) or job.errors:
        raise RuntimeError(f"sweep on {n_workers} worker(s) did not finish: {job.counts} {job.errors}")
    return job_measures(job, store, n_workers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=24, help="epochs per trial (default 24)")
    parser.add_argument("--repeats", type=int, default=3, help="sweeps per worker count, alternated (default 3)")
    args = parser.parse_args()

    register_support_package()
    from distributed import Client

    from imaging_lib.jobs import start_local_cluster
    from imaging_lib.store.objects import Store
    from imaging_lib.training import TrainingParams, grid
    from support.training_store import build_training_store

    base = TrainingParams.from_mapping({**PARAMS, "epochs": args.epochs})
    trials = grid(base, {"learning_rate": [0.003, 0.01], "seed": [0, 1]})
    with tempfile.TemporaryDirectory(prefix="bench-training-") as folder:
        store = Store(str(Path(folder) / "store"))
        labels = build_training_store(store)
        print(
            f"{len(trials)} trials of {args.epochs} epochs, LesionCNN(width=16) on "
            f"{'x'.join(map(str, PARAMS['input_size']))} slices; "
            f"{len(labels)} reviewed studies ({sum(v == 'lesion' for v in labels.values())} with a lesion)"
        )
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
                    measures[n].append(run_sweep_once(client, n, store, trials))
            ceiling = max(machine_scaling(clients) for _ in range(args.repeats))
    best = {n: max(runs, key=lambda m: m["per_minute"]) for n, runs in measures.items()}
    for n, m in best.items():
        print(
            f"{n} worker(s), best of {args.repeats}: wall {m['wall']:.1f} s, {m['per_minute']:.2f} trials/min, "
            f"trial compute {m['compute']:.1f} s, dask overhead {m['overhead']:.1%}"
        )
    ratio = best[2]["per_minute"] / best[1]["per_minute"]
    print(f"load average {os.getloadavg()[0]:.1f} after the runs (2 workers scale only with 2 idle cores)")
    print(f"the machine: the same torch steps, no data and no Dask, on 2 workers vs 1: {ceiling:.2f}x")
    share = ratio / ceiling
    print(f"scaling 2 workers vs 1: {ratio:.2f}x (target >= 1.7), {share:.0%} of what this machine allows")
    print(f"machine_scaling_2w {ceiling:.2f}")
    print(f"sweep_scaling_2w {ratio:.2f}")


if __name__ == "__main__":
    main()
