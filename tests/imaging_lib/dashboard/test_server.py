"""The dashboards' Voilà server answers only to its token, on pages, kernels and websockets."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import subprocess
import sys
import time
import uuid

import pytest
import requests
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from imaging_lib.dashboard.server import (
    TOKEN_ENV,
    apps_dir,
    dashboard_env,
    is_loopback,
    resolve_token,
    start_dashboard,
    voila_argv,
)
from imaging_lib.errors import InsecureServing
from imaging_lib.limits import UPLOAD_LIMIT_BYTES, WEBSOCKET_MAX_MESSAGE_SIZE

PAGES = ("", "voila/tree", "voila/render/index.ipynb", "voila/render/studies.ipynb")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    logs = tmp_path_factory.mktemp("voila")
    with open(logs / "voila.log", "wb") as log:
        running = start_dashboard(
            port=0, token=secrets.token_urlsafe(16), store_url=str(logs / "store"), output=log.fileno()
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


async def _kernel_info_over_websocket(url: str, padding: int) -> dict:
    connection = await websocket_connect(HTTPRequest(url), max_message_size=WEBSOCKET_MAX_MESSAGE_SIZE)
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


def test_kernel_websocket_takes_messages_larger_than_tornados_default(server, kernel_id):
    """A 12 MiB message (tornado closes at 10 MiB by default) reaches the kernel, which answers."""
    reply = asyncio.run(_kernel_info_over_websocket(_channels_url(server, kernel_id, with_token=True), 12 << 20))
    assert reply["content"]["status"] == "ok"


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


def test_non_loopback_without_a_token_is_refused_before_starting():
    with pytest.raises(InsecureServing, match="0.0.0.0"):
        start_dashboard(port=0, ip="0.0.0.0", token="")
    with pytest.raises(InsecureServing):
        voila_argv(apps_dir(), ip="192.168.1.20", token="")


def test_cli_refuses_non_loopback_when_the_token_is_turned_off():
    env = {**os.environ, TOKEN_ENV: ""}
    result = subprocess.run(
        [sys.executable, "-m", "imaging_lib.cli", "dashboard", "--ip", "0.0.0.0", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "InsecureServing" in result.stderr and "token" in result.stderr


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
    finally:
        process.terminate()
        rest, _ = process.communicate(timeout=30)
    assert env[TOKEN_ENV] not in rest


def test_argv_carries_the_token_and_the_raised_websocket_limit():
    argv = voila_argv(apps_dir(), port=9999, ip="127.0.0.1", token="abc")
    assert "--token=abc" in argv and "--port=9999" in argv and "--Voila.ip=127.0.0.1" in argv
    settings = json.loads(next(a for a in argv if a.startswith("--Voila.tornado_settings=")).split("=", 1)[1])
    assert settings["websocket_max_message_size"] > UPLOAD_LIMIT_BYTES > 10 << 20
    # a token is allowed off loopback
    assert "--Voila.ip=0.0.0.0" in voila_argv(apps_dir(), ip="0.0.0.0", token="abc")


@pytest.mark.parametrize(
    ("ip", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("", False),
        ("::", False),
        ("10.1.2.3", False),
        ("example.org", False),
    ],
)
def test_is_loopback(ip, loopback):
    assert is_loopback(ip) is loopback


def test_token_comes_from_the_argument_then_the_environment_then_chance():
    assert resolve_token("given", {TOKEN_ENV: "env"}) == "given"
    assert resolve_token(None, {TOKEN_ENV: "env"}) == "env"
    assert resolve_token(None, {TOKEN_ENV: ""}) == ""
    first, second = resolve_token(None, {}), resolve_token(None, {})
    assert first != second and len(first) >= 32


def test_kernels_get_an_absolute_store_and_never_the_token(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = dashboard_env(None, {TOKEN_ENV: "secret", "PATH": "/bin"})
    assert env["IMAGING_STORE"] == str(tmp_path / "data" / "store")
    assert TOKEN_ENV not in env
    assert dashboard_env("gs://bucket/prefix", {})["IMAGING_STORE"] == "gs://bucket/prefix"
