"""The dashboards behind the real JupyterHub, in headless Chromium: what each role sees, and what a viewer cannot do.

Users sign in through the Hub's own login form and come back to the dashboards through
Hub OAuth, as a person does. Role-gated controls carry the CSS class ``imaging-gated``
(and ``imaging-requires-<permission>``, see ``widgets/access.py``), so these tests cover
every control gated that way, the review panel's accept/reject and the model registry's
promote included once they are: a viewer sees none of them, an admin sees all.
"""

from __future__ import annotations

import re
import time

import psutil
import pytest

from imaging_lib.store import records
from imaging_lib.store.catalog import Catalog
from imaging_lib.store.labels import label_history
from imaging_lib.store.objects import Store
from support.browser import assert_real_image, chromium_context, collect_console, screenshot_pixels

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LOAD_MS = 180_000
ROWS = ".imaging-record-table tbody tr"
VIEWER = ".imaging-papaya"
GATED = ".imaging-gated"

# From inside the viewer's own page: open a websocket to the page's kernel with the page's
# cookies, find the (hidden) batch button in the kernel's widget state and press it.
FORGE_CLICK = """async ([url, cssClass]) => {
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
  const replies = [];
  ws.onmessage = (event) => { if (typeof event.data === "string") replies.push(JSON.parse(event.data)); };
  const send = (msg_type, content, metadata = {}) => {
    const msg_id = crypto.randomUUID();
    const header = {msg_id, msg_type, session: "forged", username: "forged", version: "5.3",
                    date: new Date().toISOString()};
    ws.send(JSON.stringify({header, parent_header: {}, metadata, content, channel: "shell"}));
    return msg_id;
  };
  send("comm_open", {comm_id: "forged-control", target_name: "jupyter.widget.control", data: {}}, {version: "1.0.0"});
  const request = send("comm_msg", {comm_id: "forged-control", data: {method: "request_states"}});
  let states = null;
  for (let i = 0; i < 200 && !states; i++) {
    const reply = replies.find((m) => m.parent_header.msg_id === request && m.msg_type === "comm_msg");
    if (reply) states = reply.content.data.states;
    else await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const target = Object.keys(states).find((id) => (states[id].state._dom_classes || []).includes(cssClass));
  send("comm_msg", {comm_id: target, data: {method: "custom", content: {event: "click"}}});
  await new Promise((resolve) => setTimeout(resolve, 3000));
  ws.close();
  return target;
}"""


def sign_in(page, hub, user: str) -> None:
    """Sign in as a person does: the dashboards send the browser to the Hub's form, and back."""
    page.goto(hub.dashboards)
    page.wait_for_selector("input[name=username]")
    assert page.url.startswith(f"{hub.url}/hub/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", hub.admin_password if user == "dave" else hub.password)
    page.click("#login_submit, input[type=submit], button[type=submit]")
    page.wait_for_url(re.compile(re.escape(hub.dashboards) + ".*"))


def open_dashboard(page, hub, name: str, ready: str) -> None:
    page.goto(f"{hub.dashboards}voila/render/{name}.ipynb")
    page.wait_for_selector(ready, timeout=LOAD_MS)


@pytest.fixture
def browser_page():
    with chromium_context(viewport=(1280, 900), timeout_ms=LOAD_MS) as context:
        page = context.new_page()
        console = collect_console(page)
        yield page
        print("\n".join(console[-40:]))


def test_an_unauthenticated_browser_gets_the_hubs_sign_in_and_no_dashboard(team_hub, browser_page):
    page = browser_page
    for name in ("studies", "jobs", "upload"):
        page.goto(f"{team_hub.dashboards}voila/render/{name}.ipynb")
        page.wait_for_selector("input[name=password]")
        assert page.url.startswith(f"{team_hub.url}/hub/login") and page.locator(ROWS).count() == 0
    assert_real_image(screenshot_pixels(page.locator("#login-main, form").first), min_std=5, min_levels=8)


def test_a_viewer_sees_the_study_browser_but_no_control_of_another_role(team_hub, browser_page):
    page = browser_page
    sign_in(page, team_hub, "bob")
    studies = Catalog(Store(team_hub.server.environment["IMAGING_STORE"])).studies()
    open_dashboard(page, team_hub, "studies", ROWS)
    assert page.locator(".imaging-identity-name").inner_text() == "bob"
    assert page.locator(".imaging-identity-roles").inner_text() == "viewer"
    assert page.locator(ROWS).count() == len(studies) >= 4
    brain = studies.loc[studies["shape"].map(lambda shape: tuple(shape) == (256, 256, 20))].iloc[0]
    page.click(f"{ROWS}[data-key='{brain['study_uid']}']")
    page.wait_for_selector(f"{VIEWER}[data-status=ready]", timeout=LOAD_MS)
    assert_real_image(screenshot_pixels(page.locator(f"{VIEWER} canvas").first))
    assert page.locator(f"{GATED}:visible").count() == 0
    for role_only in ("review", "promote", "upload", "run_batch", "select_cluster", "segment"):
        assert page.locator(f".imaging-requires-{role_only}:visible").count() == 0

    open_dashboard(page, team_hub, "jobs", ROWS)
    assert page.locator(GATED).count() >= 2 and page.locator(f"{GATED}:visible").count() == 0
    assert_real_image(screenshot_pixels(page.locator(".imaging-record-table")), min_std=5, min_levels=8)
    open_dashboard(page, team_hub, "upload", ".upload-limit")
    assert page.locator(".imaging-drop-zone").count() == 1 and page.locator(".imaging-drop-zone:visible").count() == 0


def test_an_admin_sees_every_gated_control(team_hub, browser_page):
    page = browser_page
    sign_in(page, team_hub, "dave")
    for name, ready in (("jobs", ".imaging-requires-run_batch"), ("upload", ".imaging-drop-zone"), ("studies", ROWS)):
        open_dashboard(page, team_hub, name, ready)
        assert page.locator(".imaging-identity-roles").inner_text() == "admin"
        gated = page.locator(GATED)
        assert gated.count() == page.locator(f"{GATED}:visible").count()
        if name != "studies":
            assert gated.count() >= 1
            assert_real_image(screenshot_pixels(gated.first), min_std=3, min_levels=4)


def test_a_forged_websocket_message_from_the_viewers_own_page_is_refused(team_hub, browser_page):
    page = browser_page
    store = Store(team_hub.server.environment["IMAGING_STORE"])
    sign_in(page, team_hub, "bob")
    open_dashboard(page, team_hub, "jobs", ROWS)
    kernel_id = re.search(r'"kernelId": "([0-9a-f-]{36})"', page.content()).group(1)
    before = len(Catalog(store).job_records())
    url = f"ws://{team_hub.url.split('://', 1)[1]}/services/dashboards/api/kernels/{kernel_id}/channels?session_id=x"
    target = page.evaluate(FORGE_CLICK, [url, "imaging-requires-run_batch"])
    assert target  # the hidden button was found and pressed
    page.wait_for_timeout(2000)
    assert len(Catalog(store).job_records()) == before
    assert page.locator(f"{GATED}:visible").count() == 0


def _open_brain(page, hub) -> str:
    """Open the study browser on the brain series; return its study UID."""
    studies = Catalog(Store(hub.server.environment["IMAGING_STORE"])).studies()
    brain = studies.loc[studies["shape"].map(lambda shape: tuple(shape) == (256, 256, 20))].iloc[0]
    open_dashboard(page, hub, "studies", ROWS)
    page.click(f"{ROWS}[data-key='{brain['study_uid']}']")
    page.wait_for_selector(f"{VIEWER}[data-status=ready]", timeout=LOAD_MS)
    return str(brain["study_uid"])


def test_a_reviewers_acceptance_records_their_hub_name(team_hub, browser_page):
    page = browser_page
    store = Store(team_hub.server.environment["IMAGING_STORE"])
    sign_in(page, team_hub, "erin")
    uid = _open_brain(page, team_hub)
    before = len(label_history(store, uid))
    accept = page.locator("button.imaging-requires-review:visible", has_text="Accept prediction")
    assert accept.count() == 1
    page.fill(".review-panel textarea", "checked by erin")
    accept.click()
    page.wait_for_selector(".review-message[data-state=saved]", timeout=LOAD_MS)
    history = label_history(store, uid)
    assert len(history) == before + 1
    latest = records.read_record(store, history[-1]["record_key"])
    assert latest["provenance"]["created_by"] == "erin" and latest["decision"]["verdict"] == "accepted"
    assert "erin" in page.locator(".label-history").inner_text()


def test_a_forged_accept_from_a_viewers_page_writes_no_label(team_hub, browser_page):
    page = browser_page
    store = Store(team_hub.server.environment["IMAGING_STORE"])
    sign_in(page, team_hub, "bob")
    uid = _open_brain(page, team_hub)
    before = label_history(store, uid)
    assert page.locator(".imaging-requires-review").count() >= 2  # the controls exist, hidden from a viewer
    kernel_id = re.search(r'"kernelId": "([0-9a-f-]{36})"', page.content()).group(1)
    url = f"ws://{team_hub.url.split('://', 1)[1]}/services/dashboards/api/kernels/{kernel_id}/channels?session_id=x"
    assert page.evaluate(FORGE_CLICK, [url, "imaging-requires-review"])  # a hidden review button was pressed
    page.wait_for_timeout(2000)
    assert label_history(store, uid) == before


def _dashboard_kernels(hub) -> dict[str, psutil.Process]:
    """The dashboards' kernel processes under the Hub, by kernel id (their connection file is in Voilà's folder)."""
    found = {}
    for process in psutil.Process(hub.server.hub.pid).children(recursive=True):
        try:
            match = re.search(r"voila_[^/]+/kernel-([0-9a-f-]{36})\.json", " ".join(process.cmdline()))
        except psutil.NoSuchProcess:
            continue
        if match:
            found[match.group(1)] = process
    return found


def _waiting_in_the_pool(hub) -> list[str]:
    """Kernels started for nobody and not handed out yet: the Hub's pooled study browsers.

    A kernel's start environment never changes, so one handed out by an earlier test (its
    user bound in the process) is told apart by the server's log line.
    """
    waiting, log = [], hub.log()
    for kernel_id, process in _dashboard_kernels(hub).items():
        environment = process.environ()
        unbound = environment.get("IMAGING_ACCESS") == "team" and not environment.get("IMAGING_USER")
        if unbound and f"pooled kernel {kernel_id} handed to" not in log:
            waiting.append(kernel_id)
    return waiting


def test_a_pooled_study_browser_handed_to_bob_carries_nothing_of_alice(team_hub):
    deadline = time.monotonic() + LOAD_MS / 1000
    while len(_waiting_in_the_pool(team_hub)) < 2:  # the pool of 2 has filled
        assert time.monotonic() < deadline, team_hub.log()[-3000:]
        time.sleep(0.5)
    with chromium_context(viewport=(1280, 900), timeout_ms=LOAD_MS) as alices:
        bobs = alices.browser.new_context(viewport={"width": 1280, "height": 900})  # own cookies: another person
        bobs.set_default_timeout(LOAD_MS)
        alice, bob = alices.new_page(), bobs.new_page()
        sign_in(alice, team_hub, "alice")
        _open_brain(alice, team_hub)
        handed_to_alice = time.time()
        sign_in(bob, team_hub, "bob")
        _open_brain(bob, team_hub)
        kernel_a, kernel_b = (re.search(r'"kernelId": "([0-9a-f-]{36})"', p.content()).group(1) for p in (alice, bob))
        assert kernel_a != kernel_b
        log = team_hub.log()
        assert f"pooled kernel {kernel_a} handed to alice" in log and f"pooled kernel {kernel_b} handed to bob" in log
        assert alice.locator(".imaging-identity-name").inner_text() == "alice"
        assert bob.locator(".imaging-identity-name").inner_text() == "bob"
        assert bob.locator(".imaging-identity-roles").inner_text() == "viewer"
        assert bob.locator(f"{GATED}:visible").count() == 0  # alice's review controls are not bob's
        assert alice.locator("button.imaging-requires-review:visible").count() >= 1
        assert alice.locator(".imaging-identity-roles").inner_text() == "researcher, reviewer"
        # Each kernel is its visitor's alone from the hand-out on.
        assert alices.request.get(f"{team_hub.dashboards}api/kernels/{kernel_b}").status == 404
        assert bobs.request.get(f"{team_hub.dashboards}api/kernels/{kernel_b}").status == 200
        # Nothing of alice reached a kernel's environment at its start: bob's, and the refills after her.
        kernels = _dashboard_kernels(team_hub)
        bobs_start = kernels[kernel_b].environ()
        assert bobs_start.get("IMAGING_ACCESS") == "team"
        assert not {"IMAGING_USER", "JUPYTERHUB_USER", "JUPYTERHUB_API_TOKEN"} & set(bobs_start)
        for kernel_id, process in kernels.items():
            if kernel_id != kernel_a and process.create_time() >= handed_to_alice - 1:
                assert not any("alice" in value for value in process.environ().values()), kernel_id
        bobs.close()
