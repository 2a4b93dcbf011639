"""The dashboards' Voilà server, tried as a hostile visitor or local user would.

It answers only to its token (pages, kernels, websockets); only at its own address (a
DNS-rebinding Host or another site's Origin gets 403, the token notwithstanding); never
shows the token on a command line or to a kernel; caps live kernels with a readable 503
page; and logs out.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import re
import secrets
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
import requests
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError, websocket_connect

from imaging_lib.dashboard.server import (
    TOKEN_ENV,
    apps_dir,
    dashboard_env,
    read_allowed_hosts,
    read_max_kernels,
    resolve_token,
    start_dashboard,
    voila_argv,
)
from imaging_lib.errors import InsecureServing
from support.servers import write_notebook

PAGES = ("", "voila/tree", "voila/render/index.ipynb", "voila/render/studies.ipynb")
PROXY = "dash.example.org"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    logs = tmp_path_factory.mktemp("voila")
    with open(logs / "voila.log", "wb") as log:
        running = start_dashboard(
            port=0,
            token=secrets.token_urlsafe(16),
            store_url=str(logs / "store"),
            output=log.fileno(),
            allowed_hosts=[PROXY],
        )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def kernel_id(server) -> str:
    """Id of the kernel Voilà started to render the landing page with the token."""
    page = requests.get(server.url("voila/render/index.ipynb"), timeout=120)
    page.raise_for_status()
    return re.search(r'"kernelId": "([0-9a-f-]{36})"', page.text).group(1)


def _refused(response: requests.Response) -> bool:
    if response.status_code == 403:
        return True
    return response.status_code in (301, 302) and "/login" in response.headers.get("Location", "")


# ------------------------------------------------------------------------- the token
@pytest.mark.parametrize("path", PAGES)
def test_pages_without_token_redirect_to_login(server, path):
    response = requests.get(server.url(path, with_token=False), allow_redirects=False, timeout=30)
    assert _refused(response), (response.status_code, response.headers)
    assert "kernelId" not in response.text


@pytest.mark.parametrize("path", PAGES)
def test_pages_with_a_wrong_token_are_refused(server, path):
    url = server.url(path, with_token=False) + "?token=" + secrets.token_urlsafe(16)
    response = requests.get(url, allow_redirects=False, timeout=30)
    assert _refused(response), (response.status_code, response.headers)


def test_kernel_api_answers_only_to_the_token(server, kernel_id):
    anonymous = requests.get(server.url(f"api/kernels/{kernel_id}", with_token=False), timeout=30)
    assert anonymous.status_code == 403
    # Voila has no kernel listing; whatever /api/kernels is, it must not answer without the token.
    assert requests.get(server.url("api/kernels", with_token=False), timeout=30).status_code in (403, 404)
    contents = requests.get(server.url("voila/api/contents", with_token=False), timeout=30)
    assert contents.status_code == 403
    authorised = requests.get(server.url(f"api/kernels/{kernel_id}"), timeout=30)
    assert authorised.status_code == 200
    assert authorised.json()["id"] == kernel_id


def test_files_of_the_dashboards_folder_are_not_served(server):
    for with_token in (False, True):
        response = requests.get(server.url("voila/files/index.ipynb", with_token=with_token), timeout=30)
        assert response.status_code in (403, 404) and '"cells"' not in response.text


def _channels_url(server, kernel_id: str, with_token: bool) -> str:
    http = server.url(f"api/kernels/{kernel_id}/channels", with_token=with_token)
    return "ws" + http[len("http") :]


def _kernel_info_request(padding: int) -> str:
    session = uuid.uuid4().hex
    header = {
        "msg_id": uuid.uuid4().hex,
        "msg_type": "kernel_info_request",
        "session": session,
        "username": "test",
        "version": "5.3",
        "date": "2024-01-01T00:00:00Z",
    }
    message = {
        "header": header,
        "parent_header": {},
        "metadata": {"padding": "x" * padding},
        "content": {},
        "channel": "shell",
        "buffers": [],
    }
    return json.dumps(message)


async def _kernel_info_over_websocket(url: str, padding: int, headers: dict[str, str] | None = None) -> dict:
    request = HTTPRequest(url, headers=headers or {})
    connection = await websocket_connect(request, max_message_size=64 << 20)
    try:
        await connection.write_message(_kernel_info_request(padding))
        while True:
            raw = await asyncio.wait_for(connection.read_message(), timeout=60)
            assert raw is not None, f"server closed the websocket: {connection.close_code} {connection.close_reason}"
            message = json.loads(raw)
            if message["header"]["msg_type"] == "kernel_info_reply":
                return message
    finally:
        connection.close()


def test_a_kernel_whose_page_is_gone_is_culled(tmp_path):
    # Voila's own shutdown-on-leave request is refused behind a token (no XSRF), so culling frees kernels.
    with open(tmp_path / "voila.log", "wb") as log:
        running = start_dashboard(
            port=0,
            token=secrets.token_urlsafe(16),
            store_url=str(tmp_path / "store"),
            output=log.fileno(),
            cull_idle_seconds=2,
        )
    try:
        page = requests.get(running.url("voila/render/index.ipynb"), timeout=120)
        kernel = re.search(r'"kernelId": "([0-9a-f-]{36})"', page.text).group(1)
        assert requests.get(running.url(f"api/kernels/{kernel}"), timeout=30).status_code == 200
        deadline = time.monotonic() + 60
        while requests.get(running.url(f"api/kernels/{kernel}"), timeout=30).status_code == 200:
            assert time.monotonic() < deadline, "the kernel of a page nobody connected to was never culled"
            time.sleep(0.5)
        assert requests.get(running.url(f"api/kernels/{kernel}"), timeout=30).status_code == 404
    finally:
        running.stop()


def test_kernel_websocket_refuses_a_connection_without_the_token(server, kernel_id):
    with pytest.raises(HTTPClientError) as refused:
        asyncio.run(_kernel_info_over_websocket(_channels_url(server, kernel_id, with_token=False), 0))
    assert refused.value.code == 403


def test_kernel_websocket_keeps_tornados_default_limit(server, kernel_id):
    """Uploads and volumes travel in chunks, so the dashboards run with tornado's stock 10 MiB limit."""
    assert asyncio.run(_kernel_info_over_websocket(_channels_url(server, kernel_id, with_token=True), 8 << 20))
    with pytest.raises((AssertionError, WebSocketClosedError, StreamClosedError)):  # the server closes it
        asyncio.run(_kernel_info_over_websocket(_channels_url(server, kernel_id, with_token=True), 12 << 20))


def _cell_outputs(page: str) -> list[dict]:
    """The cell outputs Voilà embedded in a rendered page."""
    blocks = re.findall(r'<script type="application/vnd.voila.cell-output\+json">(.*?)</script>', page, flags=re.S)
    return [json.loads(block) for block in blocks]


@pytest.mark.parametrize("name", ["studies.ipynb", "jobs.ipynb", "upload.ipynb"])
def test_every_dashboard_renders_its_panel_with_the_token_on_an_empty_store(server, name):
    response = requests.get(server.url(f"voila/render/{name}"), timeout=180)
    assert response.status_code == 200
    outputs = _cell_outputs(response.text)
    assert [o for o in outputs if o.get("output_type") == "error" or o.get("name") == "stderr"] == []
    widgets = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(widgets) == 1


def test_landing_page_links_the_three_dashboards(server):
    html = requests.get(server.url("voila/render/index.ipynb"), timeout=120).text
    for name in ("studies.ipynb", "jobs.ipynb", "upload.ipynb"):
        assert f'href="{name}"' in html


def test_logout_clears_the_login_cookie(server):
    visitor = requests.Session()
    assert visitor.get(server.url("voila/tree"), timeout=30).status_code == 200  # the token sets the cookie
    assert visitor.get(server.url("voila/tree", with_token=False), allow_redirects=False, timeout=30).ok
    logout = visitor.get(server.url("logout", with_token=False), timeout=30)
    assert logout.status_code == 200 and "Successfully logged out" in logout.text
    after = visitor.get(server.url("voila/tree", with_token=False), allow_redirects=False, timeout=30)
    assert _refused(after), (after.status_code, after.headers)


def test_a_missing_page_is_a_readable_404(server):
    response = requests.get(server.url("voila/render/no_such_dashboard.ipynb"), timeout=30)
    assert response.status_code == 404 and "404" in response.text


# ------------------------------------------------------------------------- Host and Origin
@pytest.mark.parametrize("path", ["", "voila/render/index.ipynb", "api/kernels", "voila/static/voila.js", "logout"])
def test_a_dns_rebinding_host_is_refused_even_with_the_token(server, path):
    """A page on attacker.example whose name now resolves to 127.0.0.1 reaches the port, not the dashboards."""
    response = requests.get(
        server.url(path), headers={"Host": f"attacker.example:{server.port}"}, allow_redirects=False, timeout=30
    )
    assert response.status_code == 403 and "attacker.example" in response.text
    assert "kernelId" not in response.text


def test_the_served_address_localhost_and_the_allow_listed_proxy_are_answered(server):
    for host in (f"127.0.0.1:{server.port}", f"localhost:{server.port}", PROXY):
        assert requests.get(server.url("voila/tree"), headers={"Host": host}, timeout=30).status_code == 200


def test_requests_from_another_site_are_refused(server):
    for origin in ("http://attacker.example", f"http://localhost:{server.port + 1}", "null"):
        response = requests.get(server.url("voila/tree"), headers={"Origin": origin}, timeout=30)
        assert response.status_code == 403 and "another site" in response.text
    same = requests.get(server.url("voila/tree"), headers={"Origin": f"http://127.0.0.1:{server.port}"}, timeout=30)
    assert same.status_code == 200


def test_a_websocket_from_another_site_is_refused_even_with_the_token(server, kernel_id):
    url = _channels_url(server, kernel_id, with_token=True)
    for origin in ("http://attacker.example", f"http://127.0.0.1:{server.port + 1}"):
        with pytest.raises(HTTPClientError) as refused:
            asyncio.run(_kernel_info_over_websocket(url, 0, {"Origin": origin}))
        assert refused.value.code == 403
    for origin in (f"http://127.0.0.1:{server.port}", f"https://{PROXY}"):
        reply = asyncio.run(_kernel_info_over_websocket(url, 0, {"Origin": origin}))
        assert reply["content"]["status"] == "ok"


# ------------------------------------------------------------------------- the token stays private
def _descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def test_the_token_is_on_no_command_line_and_no_kernel_sees_it(tmp_path):
    apps = tmp_path / "apps"
    write_notebook(apps / "env.ipynb", ["import os\nprint(sorted(os.environ.items()))"])
    token = "private-" + secrets.token_urlsafe(24)
    with open(tmp_path / "voila.log", "wb") as log:
        running = start_dashboard(apps, port=0, token=token, store_url=str(tmp_path / "store"), output=log.fileno())
    try:
        page = requests.get(running.url("voila/render/env.ipynb"), timeout=120)
        assert page.status_code == 200 and "IMAGING_STORE" in page.text  # the kernel printed its environment
        assert "VOILA_REQUEST_URL" in page.text and token not in page.text  # ...without the token
        kernels = _descendants(running.process.pid)
        assert kernels, "the render started no kernel"
        for pid in [running.process.pid, *(kernel.pid for kernel in kernels)]:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            assert token.encode() not in cmdline, cmdline
        for kernel in kernels:
            assert token.encode() not in Path(f"/proc/{kernel.pid}/environ").read_bytes()
        # the Voilà process got it in its environment, which only its owner can read
        voila_environ = Path(f"/proc/{running.process.pid}/environ")
        assert stat.S_IMODE(voila_environ.stat().st_mode) == 0o400
        assert voila_environ.stat().st_uid == os.getuid()
    finally:
        running.stop()
    assert token not in (tmp_path / "voila.log").read_text()


def test_argv_never_carries_the_token_and_carries_the_limits():
    argv = voila_argv(apps_dir(), port=9999, ip="127.0.0.1", max_kernels=7, allowed_hosts=["a.example", "b.example"])
    assert not any("token" in arg.lower() for arg in argv)
    assert argv[1:3] == ["-m", "imaging_lib.dashboard.voila_app"]
    assert "--port=9999" in argv and "--Voila.ip=127.0.0.1" in argv
    assert "--DashboardKernelManager.max_kernels=7" in argv
    assert "--DashboardVoila.allowed_hosts=a.example" in argv and "--DashboardVoila.allowed_hosts=b.example" in argv
    assert not any(arg.startswith("--Voila.tornado_settings=") for arg in argv)  # stock websocket limit


def test_there_is_always_a_token():
    assert resolve_token("given", {TOKEN_ENV: "env"}) == "given"
    assert resolve_token(None, {TOKEN_ENV: "env"}) == "env"
    made = {resolve_token(None, {TOKEN_ENV: ""}), resolve_token("", {}), resolve_token(None, {})}
    assert len(made) == 3 and all(len(token) >= 32 for token in made)


def test_a_short_token_off_loopback_is_refused_before_starting():
    with pytest.raises(InsecureServing, match="0.0.0.0"):
        start_dashboard(port=0, ip="0.0.0.0", token="short")


def test_the_voila_process_gets_the_token_and_an_absolute_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = dashboard_env(None, {"PATH": "/bin"}, token="secret")
    assert env["IMAGING_STORE"] == str(tmp_path / "data" / "store") and env[TOKEN_ENV] == "secret"
    assert dashboard_env("gs://bucket/prefix", {}, token="t")["IMAGING_STORE"] == "gs://bucket/prefix"


def test_settings_of_the_allow_list_and_the_kernel_cap():
    assert read_allowed_hosts({"IMAGING_DASHBOARD_ALLOWED_HOSTS": "dash.example.org, b.example"}) == (
        "dash.example.org",
        "b.example",
    )
    assert read_allowed_hosts({}) == ()
    assert read_max_kernels({}) == 32 and read_max_kernels({"IMAGING_DASHBOARD_MAX_KERNELS": "3"}) == 3
    with pytest.raises(ValueError, match="positive integer"):
        read_max_kernels({"IMAGING_DASHBOARD_MAX_KERNELS": "0"})


def test_cli_prints_the_url_with_its_token_once(tmp_path):
    env = {**os.environ, TOKEN_ENV: "cli-" + secrets.token_urlsafe(12), "IMAGING_STORE": str(tmp_path / "store")}
    process = subprocess.Popen(
        [sys.executable, "-m", "imaging_lib.cli", "dashboard", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = process.stdout.readline()
        url = re.search(r"http://\S+", line).group(0)
        assert url.endswith(f"?token={env[TOKEN_ENV]}")
        assert requests.get(url, timeout=30).status_code == 200
        bare = url.split("?")[0]
        assert _refused(requests.get(bare, allow_redirects=False, timeout=30))
        for child in _descendants(process.pid):
            assert env[TOKEN_ENV].encode() not in Path(f"/proc/{child.pid}/cmdline").read_bytes()
    finally:
        process.terminate()
        rest, _ = process.communicate(timeout=30)
    assert env[TOKEN_ENV] not in rest


def test_an_empty_token_setting_no_longer_turns_authentication_off(tmp_path):
    env = {**os.environ, TOKEN_ENV: "", "IMAGING_STORE": str(tmp_path / "store")}
    process = subprocess.Popen(
        [sys.executable, "-m", "imaging_lib.cli", "dashboard", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        url = re.search(r"http://\S+", process.stdout.readline()).group(0)
        token = url.split("?token=", 1)[1]
        assert len(token) >= 32
        assert _refused(requests.get(url.split("?")[0] + "voila/tree", allow_redirects=False, timeout=30))
        assert requests.get(url, timeout=30).status_code == 200
    finally:
        process.terminate()
        process.communicate(timeout=30)


# ------------------------------------------------------------------------- the kernel cap
def test_visitors_over_the_kernel_cap_get_a_busy_page_and_the_cap_frees_up(tmp_path):
    token = secrets.token_urlsafe(16)
    with open(tmp_path / "voila.log", "wb") as log:
        running = start_dashboard(
            port=0,
            token=token,
            store_url=str(tmp_path / "store"),
            output=log.fileno(),
            max_kernels=2,
        )
    try:
        url = running.url("voila/render/index.ipynb")
        with concurrent.futures.ThreadPoolExecutor(5) as pool:
            pages = list(pool.map(lambda _: requests.get(url, timeout=180), range(5)))
        statuses = sorted(page.status_code for page in pages)
        assert statuses == [200, 200, 503, 503, 503], statuses
        for busy in (page for page in pages if page.status_code == 503):
            assert "Dashboards busy" in busy.text and "All 2 dashboard sessions are in use" in busy.text
            assert "Try again" in busy.text and "Traceback" not in busy.text
        kernels = [re.search(r'"kernelId": "([0-9a-f-]{36})"', p.text).group(1) for p in pages if p.ok]
        for kernel in kernels:  # both served visitors still have a live kernel: nobody was cut off
            assert requests.get(running.url(f"api/kernels/{kernel}"), timeout=30).status_code == 200
        assert requests.delete(running.url(f"api/kernels/{kernels[0]}"), timeout=60).status_code == 204
        assert requests.get(url, timeout=180).status_code == 200  # a freed place serves the next visitor
        assert requests.get(url, timeout=180).status_code == 503
    finally:
        running.stop()
    logged = (tmp_path / "voila.log").read_text()
    assert "503 GET" in logged and "token=<hidden>" in logged and token not in logged  # the busy lines hide it
