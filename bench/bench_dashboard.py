"""Benchmark: 10 concurrent visitors of the study browser, each with its own Voilà kernel.

The demo store (``make demo``'s sample studies, predicted with their LIME heat maps) is
built in a temporary folder, then ``imaging_lib.dashboard.start_dashboard`` serves the
dashboards exactly as ``imaging-lab dashboard`` does (random token). Headless Chromium
opens ``studies.ipynb`` in separate browser contexts (own cookies, own kernel), selects
the brain MR study, and waits until the viewer has drawn it with its heat map overlay.

Measured in one run, side by side: one visitor alone, then 10 visitors at once. Printed:
per session the time from opening the page to the first viewer paint (and from the row
click to it), the ratio of the 10-session median to the single-session time, and the RSS
of every dashboard kernel (psutil) while the 10 pages are open.

Target: all 10 sessions render. Last line: ``dashboard_10_sessions_ok <count>``.

Run: ``.venv/bin/python bench/bench_dashboard.py [--sessions N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
from support_package import register_support_package

register_support_package()
from support.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

ROWS = ".imaging-record-table tbody tr"
VIEWER_PAINTED = ".imaging-papaya[data-status=ready][data-overlays='1']"
TIMEOUT_MS = 600_000


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
    brain = studies.loc[studies["shape"].map(lambda shape: tuple(shape) == (256, 256, 20)), "study_uid"]
    return store, brain.item()


async def visit(browser, url: str, study_uid: str, name: str) -> dict:
    """One visitor: open the study browser, select the study, wait for the viewer's paint."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    start = time.perf_counter()
    outcome = {"session": name, "ok": False}
    try:
        await page.goto(url)
        await page.wait_for_selector(f"{ROWS}[data-key='{study_uid}']")
        outcome["table_s"] = time.perf_counter() - start
        clicked = time.perf_counter()
        await page.click(f"{ROWS}[data-key='{study_uid}']")
        await page.wait_for_selector(VIEWER_PAINTED)
        now = time.perf_counter()
        outcome.update(ok=True, first_paint_s=now - start, click_to_paint_s=now - clicked)
    except Exception as exc:
        outcome["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    outcome["page"] = page
    outcome["context"] = context
    return outcome


def kernel_rss_mib(server_pid: int) -> list[float]:
    """RSS in MiB of every kernel process under the Voilà server."""
    sizes = []
    for process in psutil.Process(server_pid).children(recursive=True):
        try:
            if "ipykernel" in " ".join(process.cmdline()):
                sizes.append(process.memory_info().rss / 2**20)
        except psutil.NoSuchProcess:
            continue
    return sizes


async def run_sessions(url: str, study_uid: str, count: int, server_pid: int, label: str) -> list[dict]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            outcomes = await asyncio.gather(*(visit(browser, url, study_uid, f"{label}{i}") for i in range(count)))
            rss = kernel_rss_mib(server_pid)
            for outcome in outcomes:
                await outcome.pop("context").close()
                outcome.pop("page")
        finally:
            await browser.close()
    for outcome in outcomes:
        outcome["kernels_rss_mib"] = rss
    return outcomes


def report(outcomes: list[dict]) -> None:
    for outcome in outcomes:
        if outcome["ok"]:
            print(
                f"  {outcome['session']:>4}: table {outcome['table_s']:6.2f} s, first viewer paint "
                f"{outcome['first_paint_s']:6.2f} s (click to paint {outcome['click_to_paint_s']:5.2f} s)"
            )
        else:
            print(f"  {outcome['session']:>4}: FAILED {outcome.get('error', '')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10)
    args = parser.parse_args()

    from imaging_lib.dashboard.server import start_dashboard

    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as folder:
        print("building the demo store (ingest + batch on a LocalCluster)...", flush=True)
        store, study_uid = build_store(Path(folder))
        server = start_dashboard(port=0, store_url=store.url, output=subprocess.DEVNULL)
        try:
            url = server.url("voila/render/studies.ipynb")
            print(f"machine: {psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB")
            print("1 session alone:")
            single = asyncio.run(run_sessions(url, study_uid, 1, server.process.pid, "one"))
            report(single)
            time.sleep(2)
            print(f"{args.sessions} sessions at once:")
            many = asyncio.run(run_sessions(url, study_uid, args.sessions, server.process.pid, "s"))
            report(many)
        finally:
            server.stop()

    ok = [o for o in many if o["ok"]]
    rss = many[0]["kernels_rss_mib"]
    if rss:
        print(
            f"kernels alive with {args.sessions} pages open: {len(rss)}; RSS per kernel "
            f"mean {statistics.mean(rss):.0f} MiB, max {max(rss):.0f} MiB, total {sum(rss) / 1024:.2f} GiB"
        )
    if ok and single[0]["ok"]:
        paints = [o["first_paint_s"] for o in ok]
        alone = single[0]["first_paint_s"]
        print(
            f"first viewer paint: alone {alone:.2f} s; {args.sessions} at once median "
            f"{statistics.median(paints):.2f} s, max {max(paints):.2f} s; "
            f"median / alone = {statistics.median(paints) / alone:.2f}"
        )
    print(f"dashboard_{args.sessions}_sessions_ok {len(ok)}")


if __name__ == "__main__":
    main()
