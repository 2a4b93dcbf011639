"""The study browser rendered ahead of its visitors: from the pool, under the cap, handed out safely, quietly."""

from __future__ import annotations

import ast
import concurrent.futures
import json
import re
import secrets
import time

import psutil
import pytest
import requests

from imaging_lib.dashboard.hub_auth import Visitor
from imaging_lib.dashboard.pool import hand_out_code
from imaging_lib.dashboard.server import start_dashboard, voila_argv

KERNEL_ID = re.compile(r'"kernelId": "([0-9a-f-]{36})"')
NOISE = (
    "without encryption",
    "KeyboardInterrupt",
    "DeprecationWarning",
    "Traceback",
    "is not trusted",
)
"""Lines a served dashboard's log must not show on a page load and a shutdown."""


def kernel_processes(server) -> list[psutil.Process]:
    found = []
    for process in psutil.Process(server.process.pid).children(recursive=True):
        try:
            if "ipykernel" in " ".join(process.cmdline()):
                found.append(process)
        except psutil.NoSuchProcess:
            continue
    return found


def wait_for_kernels(server, count: int, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while len(kernel_processes(server)) < count:
        assert time.monotonic() < deadline, f"fewer than {count} kernels after {timeout:.0f} s"
        time.sleep(0.5)


# ------------------------------------------------------------------------- the hand-out, kernel side
def test_the_hand_out_code_carries_the_visitor_as_one_string_literal():
    hostile = Visitor("bob'); import os; os.system('x') #", ("viewer", '"), exec("1'), "t0k\nen")
    tree = ast.parse(hand_out_code(hostile))
    assert [type(node).__name__ for node in tree.body] == ["ImportFrom", "Expr"]
    call = tree.body[1].value
    assert call.func.id == "hand_out" and len(call.args) == 1 and not call.keywords
    assert isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str)
    assert json.loads(call.args[0].value) == {"name": hostile.name, "groups": list(hostile.groups), "token": "t0k\nen"}
    assert json.loads(ast.parse(hand_out_code(None)).body[1].value.args[0].value) is None


def test_the_pool_size_is_on_the_command_line_and_never_above_the_cap():
    assert "--DashboardVoila.pool_size=3" in voila_argv("apps", max_kernels=8, pool_size=3)
    assert "--DashboardVoila.pool_size=2" in voila_argv("apps", max_kernels=2, pool_size=10)


# ------------------------------------------------------------------------- a served pool
@pytest.fixture(scope="module")
def pooled(tmp_path_factory):
    """Dashboards with a cap of 2 kernels and a pool of 2 study browsers, once the pool is full."""
    logs = tmp_path_factory.mktemp("pool")
    with open(logs / "voila.log", "wb") as log:
        server = start_dashboard(
            port=0,
            token=secrets.token_urlsafe(16),
            store_url=str(logs / "store"),
            output=log.fileno(),
            max_kernels=2,
            pool_size=2,
        )
    server.log_path = logs / "voila.log"
    try:
        wait_for_kernels(server, 2)
        deadline = time.monotonic() + 120
        while server.log_path.read_text().count("Kernel pool of studies.ipynb is filled") < 2:
            assert time.monotonic() < deadline, server.log_path.read_text()
            time.sleep(0.5)
        yield server
    finally:
        server.stop()


def test_pooled_study_browsers_are_handed_out_and_the_pool_fills_only_under_the_cap(pooled):
    pooled_ids = set(re.findall(r"Kernel started: ([0-9a-f-]{36})", pooled.log_path.read_text()))
    url = pooled.url("voila/render/studies.ipynb")
    with concurrent.futures.ThreadPoolExecutor(3) as threads:
        pages = list(threads.map(lambda _: requests.get(url, timeout=180), range(3)))
    statuses = sorted(page.status_code for page in pages)
    assert statuses == [200, 200, 503], statuses  # both pooled kernels served, the cap holds
    served = {KERNEL_ID.search(page.text).group(1) for page in pages if page.ok}
    assert served == pooled_ids  # the pages came from the pool
    log = pooled.log_path.read_text()
    assert all(f"pooled kernel {kernel} handed to the token holder" in log for kernel in served)
    time.sleep(5)  # past the refill delay: no place is free, so nothing refills
    assert len(kernel_processes(pooled)) == 2
    for kernel in served:  # closed pages (the idle cull, at once): their places refill the pool
        assert requests.delete(pooled.url(f"api/kernels/{kernel}"), timeout=60).status_code == 204
    wait_for_kernels(pooled, 2)
    started = re.findall(r"Kernel started: ([0-9a-f-]{36})", pooled.log_path.read_text())
    assert len(started) == 4 and not set(started[2:]) & served  # two new ones, nothing more
    assert len(kernel_processes(pooled)) == 2


def test_at_the_cap_a_waiting_pooled_kernel_gives_its_place_to_another_dashboards_visitor(pooled):
    assert len(kernel_processes(pooled)) == 2  # the cap is full of pooled study browsers
    page = requests.get(pooled.url("voila/render/index.ipynb"), timeout=180)
    assert page.status_code == 200, page.text[:300]
    assert "gives its place to a visitor" in pooled.log_path.read_text()
    assert len(kernel_processes(pooled)) <= 2


def test_a_page_load_and_shutdown_leave_no_noise_in_the_server_log(pooled):
    page = requests.get(pooled.url("voila/render/studies.ipynb"), timeout=180)  # from the refilled pool
    assert page.status_code == 200
    pooled.stop()
    log = pooled.log_path.read_text()
    assert "Kernel shutdown" in log  # the log covers the shutdown
    noisy = [line for line in log.splitlines() if any(noise in line for noise in NOISE)]
    assert not noisy, noisy
