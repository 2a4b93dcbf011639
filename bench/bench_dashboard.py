"""Benchmark: a team opening the study browser at once, without and with pre-started kernels.

The demo store (``make demo``'s sample studies, predicted with their LIME heat maps) is
built in a temporary folder, then ``imaging_lib.dashboard.start_dashboard`` serves the
dashboards as ``imaging-lab dashboard`` does (random token, default kernel cap), twice
in one run, side by side: with no pool (``pool_size=0``: every visitor's kernel starts
and runs the notebook on demand) and with a pool of 10 study browsers rendered ahead
(:mod:`imaging_lib.dashboard.pool`). Before each crowd the bench waits until the server
has settled (pool filled, idle), as a server started before the team arrives would
have; after each crowd it shuts the visitors' kernels down (as the idle cull would).
Headless Chromium opens ``studies.ipynb`` in separate browser contexts (own cookies,
own kernel):

* **10 visitors at once**: each waits for the study table (its *first paint*), then
  selects the brain MR study and waits until the viewer has drawn it with its heat map;
* **25 visitors at once**: each waits for the study table; a visitor counts as rendered
  when its table showed and the server still has its kernel, not dead. The RSS of the
  Voilà server plus every kernel is sampled during the crowd: its peak is what a crowd
  costs (bounded by the kernel cap, ``IMAGING_DASHBOARD_MAX_KERNELS``).

For each crowd the CPU seconds of the server, the kernels and Chromium are printed.

Targets (issue 17): ``dashboard_10_first_paint_p50_s`` (viewer paint) at most 8,
``dashboard_10_first_paint_p90_s`` at most 12, ``dashboard_25_sessions_ok`` 25.

Run: ``.venv/bin/python bench/bench_dashboard.py [--visitors 10] [--crowd 25] [--pool 10]``.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path

import psutil
import requests
from support_package import register_support_package

register_support_package()
from support.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

ROWS = ".imaging-record-table tbody tr"
VIEWER_PAINTED = ".imaging-papaya[data-status=ready]:not([data-overlays='0'])"  # heat map (and label mask) on
TIMEOUT_MS = 300_000
SETTLE_TIMEOUT_S = 300.0
KERNEL_ID = re.compile(r'"kernelId": "([0-9a-f-]{36})"')


def build_store(folder: Path):
    """The demo store: sample studies ingested and predicted (no reports: not measured here)."""
    from distributed import Client

    from imaging_lib.demo import prepare_demo
    from imaging_lib.jobs import start_local_cluster
    from imaging_lib.store.catalog import Catalog
    from imaging_lib.store.objects import Store

    store = Store(folder / "store")
    with start_local_cluster(threads_per_worker=1) as cluster, Client(cluster, set_as_default=False) as client:
        outcome = prepare_demo(store, client, reports=False, progress=False)
    if outcome.batch.counts["failed"]:
        raise SystemExit(f"demo batch failed: {outcome.batch.errors}")
    studies = Catalog(store).studies()
    brains = studies.loc[studies["shape"].map(lambda shape: tuple(shape) == (256, 256, 20))]
    return store, brains.loc[brains["study_label"] == "lesion", "study_uid"].item()  # the demo's brain with a lesion


def kernels(server_pid: int) -> list[psutil.Process]:
    """Every kernel process under the Voilà server."""
    found = []
    for process in psutil.Process(server_pid).children(recursive=True):
        try:
            if "ipykernel" in " ".join(process.cmdline()):
                found.append(process)
        except psutil.NoSuchProcess:
            continue
    return found


def cpu_seconds(processes: list[psutil.Process]) -> float:
    """User plus system CPU seconds of ``processes`` so far (those gone count 0)."""
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def rss_mib(processes: list[psutil.Process]) -> float:
    """Summed RSS of ``processes`` in MiB (those gone count 0)."""
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 2**20


def chromium_processes() -> list[psutil.Process]:
    """The headless Chromium processes this bench started (children of this process's tree)."""
    return [p for p in psutil.Process().children(recursive=True) if "chrom" in p.name().lower()]


def settle(server_pid: int, quiet_s: float = 3.0) -> int:
    """Wait until the server and kernels used under 5 % of a core for ``quiet_s`` s; return the kernel count."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    server = psutil.Process(server_pid)
    while time.monotonic() < deadline:
        before = cpu_seconds([server, *kernels(server_pid)])
        time.sleep(quiet_s)
        if cpu_seconds([server, *kernels(server_pid)]) - before < 0.05 * quiet_s:
            return len(kernels(server_pid))
    raise SystemExit(f"the dashboards did not settle within {SETTLE_TIMEOUT_S:.0f} s")


class PeakRss:
    """Samples the RSS of the server plus its kernels every 0.25 s in a thread; ``peak`` is the largest sum."""

    def __init__(self, server_pid: int) -> None:
        self.server = psutil.Process(server_pid)
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self.peak = max(self.peak, rss_mib([self.server, *kernels(self.server.pid)]))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def visit(browser, url: str, study_uid: str | None, name: str) -> dict:
    """One visitor: open the study browser; with ``study_uid``, select it and wait for the viewer's paint."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    start = time.perf_counter()
    outcome: dict = {"session": name, "ok": False, "context": context}
    try:
        response = await page.goto(url)
        outcome["kernel_id"] = (KERNEL_ID.search(await response.text()) or [None, None])[1]
        await page.wait_for_selector(f"{ROWS}[data-key]")
        outcome["table_s"] = time.perf_counter() - start
        if study_uid is not None:
            clicked = time.perf_counter()
            await page.click(f"{ROWS}[data-key='{study_uid}']")
            await page.wait_for_selector(VIEWER_PAINTED)
            now = time.perf_counter()
            outcome.update(first_paint_s=now - start, click_to_paint_s=now - clicked)
        outcome["ok"] = True
    except Exception as exc:
        outcome["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return outcome


def kernel_alive(server, kernel_id: str | None) -> bool:
    """Whether the server still has the kernel and it is not dead."""
    if kernel_id is None:
        return False
    response = requests.get(server.url(f"api/kernels/{kernel_id}"), timeout=60)
    return response.ok and response.json().get("execution_state") not in ("dead", "restarting")


async def crowd(server, study_uid: str | None, count: int, label: str) -> tuple[list[dict], dict]:
    """``count`` visitors at once; returns their outcomes and what the crowd cost (CPU, peak RSS)."""
    from playwright.async_api import async_playwright

    url = server.url("voila/render/studies.ipynb")
    server_process = psutil.Process(server.process.pid)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            cpu_before = {"server": cpu_seconds([server_process]), "kernels": cpu_seconds(kernels(server.process.pid))}
            chromium_before = cpu_seconds(chromium_processes())
            started = time.perf_counter()
            with PeakRss(server.process.pid) as peak:
                outcomes = await asyncio.gather(*(visit(browser, url, study_uid, f"{label}{i}") for i in range(count)))
            cost = {
                "wall": time.perf_counter() - started,
                "server": cpu_seconds([server_process]) - cpu_before["server"],
                "kernels": cpu_seconds(kernels(server.process.pid)) - cpu_before["kernels"],
                "chromium": cpu_seconds(chromium_processes()) - chromium_before,
                "peak_rss_mib": peak.peak,
                "kernel_count": len(kernels(server.process.pid)),
            }
            for outcome in outcomes:  # judged while every page is still open
                outcome["kernel_alive"] = kernel_alive(server, outcome.get("kernel_id"))
            for outcome in outcomes:
                await outcome.pop("context").close()
        finally:
            await browser.close()
    for outcome in outcomes:  # what the idle cull would do, at once: the next crowd finds the places free
        if outcome.get("kernel_id"):
            requests.delete(server.url(f"api/kernels/{outcome['kernel_id']}"), timeout=60)
    return outcomes, cost


def report(outcomes: list[dict], cost: dict) -> None:
    for outcome in outcomes:
        if not outcome["ok"]:
            print(f"  {outcome['session']:>4}: FAILED {outcome.get('error', '')}")
        elif "first_paint_s" in outcome:
            print(
                f"  {outcome['session']:>4}: table {outcome['table_s']:6.2f} s, viewer painted "
                f"{outcome['first_paint_s']:6.2f} s (click to paint {outcome['click_to_paint_s']:5.2f} s)"
            )
        else:
            alive = "kernel alive" if outcome["kernel_alive"] else "KERNEL DEAD OR GONE"
            print(f"  {outcome['session']:>4}: table {outcome['table_s']:6.2f} s, {alive}")
    print(
        f"  CPU seconds over {cost['wall']:.1f} s: Voila server {cost['server']:.1f}, kernels {cost['kernels']:.1f}, "
        f"Chromium {cost['chromium']:.1f}; {cost['kernel_count']} kernels, peak RSS server+kernels "
        f"{cost['peak_rss_mib']:.0f} MiB",
        flush=True,
    )


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``values`` (nearest rank: p90 of 10 values is the 9th smallest)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))]


def measure(store_url: str, study_uid: str, pool_size: int, visitors: int, crowd_size: int, log: Path) -> dict:
    """Serve the dashboards with ``pool_size`` pooled kernels; run both crowds; return what was measured."""
    from imaging_lib.dashboard.server import start_dashboard

    with open(log, "wb") as output:
        server = start_dashboard(port=0, store_url=store_url, output=output.fileno(), pool_size=pool_size)
    try:
        print(f"  settled with {settle(server.process.pid)} kernels up before any visitor", flush=True)
        print(f" {visitors} visitors at once, each opening the brain MR:")
        many, cost = asyncio.run(crowd(server, study_uid, visitors, "v"))
        report(many, cost)
        settle(server.process.pid)
        print(f" {crowd_size} visitors at once, each opening the page:")
        crowded, crowd_cost = asyncio.run(crowd(server, None, crowd_size, "c"))
        report(crowded, crowd_cost)
    finally:
        server.stop()
    died = [line for line in log.read_text(errors="replace").splitlines() if "died" in line or "restarting" in line]
    if died:
        print("  server log: " + "; ".join(died[:3]))
    ok_many = [o for o in many if o["ok"]]
    return {
        "tables": [o["table_s"] for o in ok_many],
        "paints": [o["first_paint_s"] for o in ok_many],
        "failed": visitors - len(ok_many),
        "rendered": 0 if died else sum(1 for o in crowded if o["ok"] and o["kernel_alive"]),
        "peak_rss_mib": crowd_cost["peak_rss_mib"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, default=10, help="visitors at once who open a study (default 10)")
    parser.add_argument("--crowd", type=int, default=25, help="visitors at once who open the page (default 25)")
    parser.add_argument("--pool", type=int, default=10, help="pooled study browsers in the second run (default 10)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as folder:
        print("building the demo store (ingest + batch on a LocalCluster)...", flush=True)
        store, study_uid = build_store(Path(folder))
        print(f"machine: {psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB")
        runs = {}
        for pool in (0, args.pool):
            print(f"pool of {pool} pre-started study browsers:", flush=True)
            runs[pool] = measure(
                store.url, study_uid, pool, args.visitors, args.crowd, Path(folder) / f"voila-{pool}.log"
            )

    cold, warm = runs[0], runs[args.pool]
    print(f"side by side, {args.visitors} visitors at once (no pool | pool of {args.pool}):")
    for name, key in (("study table", "tables"), ("viewer painted", "paints")):
        if cold[key] and warm[key]:
            print(
                f"  {name:>14}: median {statistics.median(cold[key]):6.2f} s | {statistics.median(warm[key]):6.2f} s, "
                f"max {max(cold[key]):6.2f} s | {max(warm[key]):6.2f} s"
            )
    print(
        f"  {args.crowd} at once rendered: {cold['rendered']} | {warm['rendered']}; peak RSS server+kernels "
        f"{cold['peak_rss_mib']:.0f} | {warm['peak_rss_mib']:.0f} MiB"
    )
    complete = not warm["failed"] and len(warm["tables"]) == args.visitors
    nan = float("nan")
    p50 = statistics.median(warm["tables"]) if complete else nan
    speedup = statistics.median(cold["tables"]) / p50 if complete and cold["tables"] else nan
    print(f"dashboard_{args.visitors}_table_paint_p50_s {p50:.2f}")
    print(f"dashboard_pool_speedup {speedup:.2f}")
    print(f"dashboard_{args.crowd}_peak_rss_mib {warm['peak_rss_mib']:.0f}")
    if complete:
        print(f"dashboard_{args.visitors}_first_paint_p50_s {statistics.median(warm['paints']):.2f}")
        print(f"dashboard_{args.visitors}_first_paint_p90_s {percentile(warm['paints'], 0.9):.2f}")
    else:
        print(f"dashboard_{args.visitors}_first_paint_p50_s nan ({warm['failed']} visitors failed)")
    print(f"dashboard_{args.crowd}_sessions_ok {warm['rendered']}")


if __name__ == "__main__":
    main()
