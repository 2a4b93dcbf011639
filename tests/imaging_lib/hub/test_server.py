"""The team deployment, tried as its users and as a hostile one would: a real JupyterHub, proxy, dashboards, gateway.

The session's ``team_hub`` runs what ``imaging-lab hub`` runs (``deploy/jupyterhub/jupyterhub_config.py``
behind ``configurable-http-proxy``, the Voilà dashboards as a Hub service, a Dask Gateway),
with the users of ``support.hub.USERS``: alice (researcher, reviewer), bob (viewer), carol
(no role), dave (admin), erin (reviewer). Requests go through the proxy as a browser's do;
forged messages go over the kernel websocket as a hand-written client would send them.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path

import pytest
import requests
from tornado.httpclient import HTTPClientError

from imaging_lib.hub.server import DEPLOY, demo_password, start_hub
from imaging_lib.io import nifti_to_bytes
from imaging_lib.phantoms import demo_phantom
from imaging_lib.store.catalog import Catalog
from imaging_lib.store.objects import Store
from support.kernel_ws import KernelSocket, channels_url, cookie_header, model_with_class
from support.servers import REPO_ROOT, free_port

pytestmark = [pytest.mark.slow]

PAGES = ("", "voila/tree", "voila/render/index.ipynb", "voila/render/studies.ipynb", "voila/render/jobs.ipynb")
RENDER_TIMEOUT = 180


def render(hub, session: requests.Session, page: str) -> str:
    """Render a dashboard as ``session``'s user; return its kernel id."""
    response = session.get(hub.dashboards + f"voila/render/{page}", timeout=RENDER_TIMEOUT)
    assert response.status_code == 200, (response.status_code, response.text[:500])
    return re.search(r'"kernelId": "([0-9a-f-]{36})"', response.text).group(1)


@pytest.fixture(scope="module")
def bob(team_hub):
    return team_hub.sign_in("bob")


@pytest.fixture(scope="module")
def bobs_kernel(team_hub, bob):
    return render(team_hub, bob, "jobs.ipynb")


def _refused(response: requests.Response) -> bool:
    """403, or a redirect to the Hub's sign-in: never the content."""
    location = response.headers.get("Location", "")
    redirected = response.status_code in (301, 302, 303) and ("/hub/" in location or "oauth2/authorize" in location)
    return (response.status_code in (401, 403) or redirected) and "kernelId" not in response.text


# ------------------------------------------------------------------------------ who may in
@pytest.mark.parametrize("path", PAGES)
def test_dashboard_pages_send_the_unauthenticated_to_the_hubs_sign_in(team_hub, path):
    response = requests.get(team_hub.dashboards + path, allow_redirects=False, timeout=30)
    assert _refused(response), (response.status_code, response.headers)
    landed = requests.get(team_hub.dashboards + path, timeout=30)  # follow it: the Hub's sign-in page
    assert landed.url.startswith(f"{team_hub.url}/hub/login") and 'name="password"' in landed.text


def test_every_api_route_refuses_the_unauthenticated(team_hub, bobs_kernel):
    for method, path in [
        ("GET", f"{team_hub.dashboards}api/kernels/{bobs_kernel}"),
        ("DELETE", f"{team_hub.dashboards}api/kernels/{bobs_kernel}"),
        ("POST", f"{team_hub.dashboards}voila/api/shutdown/{bobs_kernel}"),
        ("GET", f"{team_hub.dashboards}voila/api/contents"),
        ("GET", f"{team_hub.url}/hub/api/users"),
        ("GET", f"{team_hub.url}/hub/api/user"),
        ("GET", f"{team_hub.url}/user/alice/api/kernels"),
    ]:
        response = requests.request(method, path, allow_redirects=False, timeout=30)
        assert _refused(response), (method, path, response.status_code)
    with pytest.raises(HTTPClientError) as refused:
        asyncio.run(KernelSocket.open(channels_url(team_hub.dashboards, bobs_kernel)))
    assert refused.value.code == 403
    assert requests.get(team_hub.dashboards + f"api/kernels/{bobs_kernel}", timeout=30).status_code == 403


def test_a_signed_in_user_with_no_role_gets_a_page_saying_so(team_hub):
    carol = team_hub.sign_in("carol")
    for path in ("", "voila/render/studies.ipynb"):
        response = carol.get(team_hub.dashboards + path, timeout=30)
        assert response.status_code == 403 and "kernelId" not in response.text
        assert "signed in as carol" in response.text and "no role" in response.text
        assert "researcher, reviewer, viewer, uploader, admin" in response.text
        assert "Traceback" not in response.text


def test_the_hub_sends_notebook_users_home_and_everyone_else_to_the_dashboards(team_hub, bob):
    alice = team_hub.sign_in("alice")
    assert alice.get(f"{team_hub.url}/hub/", timeout=30).url == f"{team_hub.url}/hub/home"
    assert bob.get(f"{team_hub.url}/hub/", timeout=30).url == team_hub.dashboards


# ------------------------------------------------------------------------------ kernels
def test_a_kernel_answers_only_to_its_visitor(team_hub, bob, bobs_kernel):
    alice = team_hub.sign_in("alice")
    assert bob.get(team_hub.dashboards + f"api/kernels/{bobs_kernel}", timeout=30).status_code == 200
    assert alice.get(team_hub.dashboards + f"api/kernels/{bobs_kernel}", timeout=30).status_code == 404
    xsrf = alice.cookies.get("_xsrf", path="/services/dashboards/") or ""
    shutdown = alice.post(
        team_hub.dashboards + f"voila/api/shutdown/{bobs_kernel}", headers={"X-XSRFToken": xsrf}, timeout=30
    )
    assert shutdown.status_code == 404
    with pytest.raises(HTTPClientError) as refused:
        asyncio.run(KernelSocket.open(channels_url(team_hub.dashboards, bobs_kernel), {"Cookie": cookie_header(alice)}))
    assert refused.value.code == 404
    assert bob.get(team_hub.dashboards + f"api/kernels/{bobs_kernel}", timeout=30).status_code == 200  # still alive


async def _forge_as_viewer(team_hub, bob, kernel_id: str, canary: Path) -> dict:
    socket = await KernelSocket.open(channels_url(team_hub.dashboards, kernel_id), {"Cookie": cookie_header(bob)})
    try:
        states = await socket.widget_states()
        button = model_with_class(states, "imaging-requires-run_batch")
        selector = model_with_class(states, "imaging-requires-select_cluster")
        await socket.click(button)
        await socket.set_value(selector, "index", 0)  # "local": a viewer switching the cluster
        code = f"open({str(canary)!r}, 'w').write('executed')"
        execute = await socket.send("execute_request", {"code": code, "silent": False, "store_history": False})
        reply = await socket.reply_to(execute, timeout=8)
        return {"states": states, "after": await socket.widget_states(), "execute_reply": reply}
    finally:
        socket.close()


def test_a_viewers_kernel_knows_them_from_the_server_and_refuses_their_forged_messages(
    team_hub, bob, bobs_kernel, tmp_path
):
    canary = tmp_path / "executed.txt"
    store = Store(team_hub.server.environment["IMAGING_STORE"])
    jobs_before = len(Catalog(store).job_records())
    seen = asyncio.run(_forge_as_viewer(team_hub, bob, bobs_kernel, canary))
    identities = [s["value"] for s in seen["states"].values() if "imaging-identity" in str(s.get("value", ""))]
    assert len(identities) == 1 and "<b class='imaging-identity-name'>bob</b>" in identities[0]
    assert "viewer" in identities[0]
    button = model_with_class(seen["states"], "imaging-requires-run_batch")
    layout = seen["states"][button]["layout"].removeprefix("IPY_MODEL_")
    assert seen["states"][layout]["display"] == "none"  # hidden from a viewer
    selector = model_with_class(seen["after"], "imaging-requires-select_cluster")
    assert seen["after"][selector]["index"] == 2  # the forged switch to "local" was undone: still "gateway"
    time.sleep(3)
    assert len(Catalog(store).job_records()) == jobs_before  # the forged click started nothing
    assert seen["execute_reply"] is None and not canary.exists()  # Voilà drops execute requests


def test_a_researchers_click_runs_a_batch_on_their_gateway_cluster_recorded_as_theirs(team_hub):
    store = Store(team_hub.server.environment["IMAGING_STORE"])
    from imaging_lib.ingestion import ingest

    summary = ingest([("phantom.nii.gz", nifti_to_bytes(demo_phantom().volume))], store, progress=False)
    alice = team_hub.sign_in("alice")
    kernel = render(team_hub, alice, "jobs.ipynb")

    async def press() -> dict:
        socket = await KernelSocket.open(channels_url(team_hub.dashboards, kernel), {"Cookie": cookie_header(alice)})
        try:
            states = await socket.widget_states()
            await socket.click(model_with_class(states, "imaging-requires-run_batch"))
            await socket.collect(2)
            return states
        finally:
            socket.close()

    states = asyncio.run(press())
    where = [s["value"] for s in states.values() if "job-cluster" in str(s.get("value", ""))]
    assert "your own Dask Gateway cluster" in where[0]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        records = [r for r in Catalog(store).job_records("batch") if summary.studies[0] in r.get("items", {})]
        if records and records[0]["status"] == "finished":
            break
        time.sleep(2)
    assert records and records[0]["status"] == "finished", records
    assert records[0]["provenance"]["created_by"] == "alice"
    assert "gateway" in records[0].get("dashboard_link", "") or records[0].get("dashboard_link")
    results = Catalog(store).results()
    assert list(results.loc[results["study_uid"] == summary.studies[0], "created_by"]) == ["alice"]


# ------------------------------------------------------------------------------ bad input
def test_a_revoked_token_sends_the_visitor_back_to_sign_in(team_hub):
    alice = team_hub.sign_in("alice")
    admin_token, _ = team_hub.token("dave")

    def dashboards_tokens() -> list[dict]:
        tokens = team_hub.api("GET", "users/alice/tokens", admin_token).json()["api_tokens"]
        return [token for token in tokens if "dashboards" in str(token.get("oauth_client"))]

    oauth = dashboards_tokens()
    assert oauth
    # Revoking one OAuth token revokes every token the Hub gave the dashboards for alice.
    assert team_hub.api("DELETE", f"users/alice/tokens/{oauth[0]['id']}", admin_token).status_code == 204
    assert dashboards_tokens() == []
    time.sleep(2)  # the service trusts the Hub's answer for one second in this deployment
    dashboards_only = requests.Session()
    for cookie in alice.cookies:
        if cookie.path.startswith("/services/dashboards"):
            dashboards_only.cookies.set_cookie(cookie)
    response = dashboards_only.get(team_hub.dashboards + "voila/render/jobs.ipynb", allow_redirects=False, timeout=30)
    assert _refused(response), response.status_code
    landed = dashboards_only.get(team_hub.dashboards + "voila/render/jobs.ipynb", timeout=30)
    assert landed.url.startswith(f"{team_hub.url}/hub/login") and "Traceback" not in landed.text


# ------------------------------------------------------------------------------ JupyterLab
def _wait_for_server(team_hub, user: str, token: str, ready: bool, timeout: float = 150) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        model = team_hub.api("GET", f"users/{user}", token).json()
        server = model.get("servers", {}).get("")
        if bool(server and server.get("ready")) == ready and not (server and server.get("pending")):
            return model
        time.sleep(1)
    raise AssertionError(f"{user}'s server not {'ready' if ready else 'stopped'}: {model}")


async def _identity_in_lab(base: str, kernel_id: str, token: str) -> str:
    url = "ws" + base[len("http") :] + f"api/kernels/{kernel_id}/channels"
    socket = await KernelSocket.open(url, {"Authorization": f"token {token}"})
    try:
        code = "from imaging_lib.identity import current_identity; print(current_identity().describe())"
        request = await socket.send("execute_request", {"code": code, "silent": False, "store_history": False})
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for message in await socket.collect(1):
                if message["parent_header"].get("msg_id") == request and message["msg_type"] == "stream":
                    return message["content"]["text"].strip()
        raise AssertionError("no output")
    finally:
        socket.close()


def test_researchers_get_jupyterlab_with_the_platform_kernel_and_viewers_do_not(team_hub, bob):
    alice_token, _ = team_hub.token("alice")
    started = team_hub.api("POST", "users/alice/server", alice_token)
    assert started.status_code in (201, 202), started.text
    try:
        _wait_for_server(team_hub, "alice", alice_token, ready=True)
        lab = f"{team_hub.url}/user/alice/"
        headers = {"Authorization": f"token {alice_token}"}
        assert requests.get(lab + "lab", headers=headers, timeout=60).status_code == 200
        specs = requests.get(lab + "api/kernelspecs", headers=headers, timeout=30).json()
        assert "python3" in specs["kernelspecs"]
        kernel = requests.post(lab + "api/kernels", json={"name": "python3"}, headers=headers, timeout=60).json()
        assert asyncio.run(_identity_in_lab(lab, kernel["id"], alice_token)) == "alice (researcher, reviewer)"
    finally:
        team_hub.api("DELETE", "users/alice/server", alice_token)
        _wait_for_server(team_hub, "alice", alice_token, ready=False)

    bob_token, _ = team_hub.token("bob", bob)
    refused = team_hub.api("POST", "users/bob/server", bob_token)
    if refused.status_code in (201, 202):  # the spawn is refused by the hook: wait for its failure
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and team_hub.api("GET", "users/bob", bob_token).json()["servers"]:
            time.sleep(1)
    assert team_hub.api("GET", "users/bob", bob_token).json()["servers"] == {}
    assert "may not use notebooks (JupyterLab)" in team_hub.log()


# ------------------------------------------------------------------------------ the demo
def test_the_hub_demo_signs_in_its_two_sample_users_with_their_roles(tmp_path):
    state = tmp_path / "state"
    password = demo_password(state)
    assert demo_password(state) == password and oct((state / "demo-password").stat().st_mode)[-3:] == "600"
    env = {
        "IMAGING_HUB_URL": f"http://127.0.0.1:{free_port()}",
        "IMAGING_HUB_STATE": str(state),
        "IMAGING_HUB_DASHBOARDS_PORT": str(free_port()),
        "PYTHONPATH": str(REPO_ROOT),
    }
    site_config = tmp_path / "demo_site.py"  # the demo's file, on free ports for the test
    site_config.write_text(
        f"load_subconfig({str(DEPLOY / 'jupyterhub' / 'demo_config.py')!r})\n"
        f"c.JupyterHub.hub_bind_url = 'http://127.0.0.1:{free_port()}'\n"
        f"c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{free_port()}'\n"
    )
    with open(tmp_path / "hub.log", "wb") as log:
        server = start_hub(
            config=site_config, environ={**os.environ, **env}, store_url=str(tmp_path / "store"), output=log.fileno()
        )
    try:
        for user, roles in (("alice", "researcher, reviewer"), ("bob", "viewer")):
            session = requests.Session()
            login = session.get(f"{server.url}/hub/login", timeout=30)
            xsrf = re.search(r'name="_xsrf" value="([^"]+)"', login.text).group(1)
            session.post(f"{server.url}/hub/login", data={"username": user, "password": password, "_xsrf": xsrf})
            page = session.get(f"{server.url}/services/dashboards/voila/render/jobs.ipynb", timeout=RENDER_TIMEOUT)
            assert page.status_code == 200, (user, page.status_code)
            kernel = re.search(r'"kernelId": "([0-9a-f-]{36})"', page.text).group(1)
            assert f"{user}</b> · <span class='imaging-identity-roles'>{roles}<" in asyncio.run(
                _identity_bar(f"{server.url}/services/dashboards/", kernel, session)
            )
        wrong = requests.Session()
        login = wrong.get(f"{server.url}/hub/login", timeout=30)
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', login.text).group(1)
        refused = wrong.post(
            f"{server.url}/hub/login", data={"username": "mallory", "password": password, "_xsrf": xsrf}, timeout=30
        )
        assert "jupyterhub-session-id" not in wrong.cookies or refused.status_code == 403
    finally:
        server.stop()


async def _identity_bar(base: str, kernel_id: str, session: requests.Session) -> str:
    socket = await KernelSocket.open(channels_url(base, kernel_id), {"Cookie": cookie_header(session)})
    try:
        states = await socket.widget_states()
    finally:
        socket.close()
    return next(s["value"] for s in states.values() if "imaging-identity" in str(s.get("value", "")))
