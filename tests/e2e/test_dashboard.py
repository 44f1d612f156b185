"""The web dashboard in a real browser: Playwright drives Debian's chromium (headless)
against a real ``coffer server`` with its agent and real Redis engines.

Screenshots of each step are saved under ``$COFFER_TEST_ARTIFACTS`` (default: a pytest
temporary directory); the directory is printed (``-s`` shows it) and named in the
report's properties.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
import redis

from tests.support.api import delete_configurations, delete_instances, fault, flavor_id
from tests.support.processes import CofferServer, Credentials, wait_for

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

# a missing Playwright skips this module with the reason, rather than breaking collection
sync_api = pytest.importorskip("playwright.sync_api", reason="needs Playwright (pip)")
expect = sync_api.expect

pytestmark = [
    pytest.mark.integration,
    # the pages read the same REST API whatever keeps the metadata (every API test runs
    # on both kinds); one browser run keeps CI's two cores for the rest
    pytest.mark.parametrize("server", ["sqlite"], indirect=True),
]

CHROMIUM = "/usr/bin/chromium"
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
SLOW = 180_000  # ms: an instance build or restore, a backup


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("COFFER_TEST_ARTIFACTS")
    path = Path(configured) if configured else tmp_path_factory.mktemp("dashboard")
    path.mkdir(parents=True, exist_ok=True)
    print(f"\ndashboard screenshots: {path}")
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Browser, server: CofferServer) -> Iterator[Page]:
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield pg
    finally:
        context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture(scope="module")
def project(server: CofferServer) -> Credentials:
    """A project of its own, logged in to with its (non-admin) token."""
    return server.new_project(f"dash-{uuid.uuid4().hex[:8]}")


class Shots:
    """Numbered full-page screenshots of one test, as artefacts."""

    def __init__(self, page: Page, directory: Path, test: str) -> None:
        self.page, self.n = page, 0
        self.directory = directory / re.sub(r"[^A-Za-z0-9_.-]+", "_", test)
        self.directory.mkdir(parents=True, exist_ok=True)

    def __call__(self, what: str) -> Path:
        self.n += 1
        path = self.directory / f"{self.n:02d}-{what}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def shots(page: Page, artifacts: Path, request: pytest.FixtureRequest) -> Shots:
    s = Shots(page, artifacts, request.node.name)
    request.node.user_properties.append(("screenshots", str(s.directory)))
    return s


def log_in(page: Page, token: str) -> None:
    page.goto("/")  # a browser is sent to the dashboard, which asks for a token
    expect(page).to_have_url(re.compile(r"/dashboard/#/login$"))
    page.fill("#login-token", token)
    page.click("#login-form button[type=submit]")
    expect(page).to_have_url(re.compile(r"#/instances$"))


def status_of(page: Page, nth: int = 0) -> Locator:
    return page.locator("#instance-state .status").nth(nth)


# -- serving: / for clients and browsers, the static files, whoami ------------------------


def test_root_serves_api_clients_and_sends_browsers_to_the_dashboard(
    server: CofferServer, admin: Credentials, project: Credentials
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        for accept in ("application/json", "*/*", "application/vnd.openstack.trove+json", ""):
            r = c.get("/", headers={"Accept": accept})
            assert r.status_code == 200, (accept, r.text)
            versions = {v["id"]: v for v in r.json()["versions"]}  # Trove's and Keystone's
            assert versions["v1.0"]["status"] == "CURRENT"
            assert r.headers["vary"] == "Accept"
        r = c.get("/", headers={"Accept": BROWSER_ACCEPT})
        assert r.status_code == 303 and r.headers["location"] == "/dashboard/"
        assert r.headers["vary"] == "Accept"
        # a POST to / is no navigation: untouched (Trove's 405)
        r = c.post("/", headers={"Accept": BROWSER_ACCEPT})
        assert r.status_code == 405 and fault(r)[0] == "badMethod"

        r = c.get("/dashboard/", headers={"Accept": BROWSER_ACCEPT})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert 'src="js/app.js"' in r.text
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        r = c.get("/dashboard/js/app.js")
        assert r.status_code == 200 and "javascript" in r.headers["content-type"]
        r = c.get("/dashboard/js/nothing-here.js")
        assert r.status_code == 404 and fault(r)[0] == "itemNotFound"
        r = c.get("/dashboard/../credentials.json")
        assert r.status_code == 404

        # whoami: the token's own project, nothing without a valid token
        r = c.get("/v1.0/whoami")
        assert r.status_code == 401 and fault(r)[0] == "unauthorized"
        r = c.get("/v1.0/whoami", headers={"X-Auth-Token": "not-a-token"})
        assert r.status_code == 401 and "not valid" in fault(r)[2]
        r = c.post("/v1.0/whoami", headers={"X-Auth-Token": project.token})
        assert r.status_code == 405
        mine = c.get("/v1.0/whoami", headers={"X-Auth-Token": project.token}).json()["whoami"]
        assert mine["project_id"] == project.project_id and mine["is_admin"] is False
        assert mine["endpoint"] == project.endpoint and mine["project_name"].startswith("dash-")
        boss = c.get("/v1.0/whoami", headers={"X-Auth-Token": admin.token}).json()["whoami"]
        assert boss["project_id"] == admin.project_id and boss["is_admin"] is True
        assert "/v1.0/whoami" in c.get("/openapi.json").json()["paths"]


# -- browser flows --------------------------------------------------------------------------


def test_login_refuses_a_bad_token_and_logs_out(
    page: Page, shots: Shots, project: Credentials
) -> None:
    page.goto("/dashboard/#/instances")
    expect(page).to_have_url(re.compile(r"#/login$"))  # no session: the login form
    page.fill("#login-token", "not-a-token")
    page.click("#login-form button[type=submit]")
    expect(page.locator("#login-error")).to_have_text("the token is not valid")
    expect(page).to_have_url(re.compile(r"#/login$"))
    assert page.evaluate("sessionStorage.getItem('coffer.session')") is None
    shots("bad-token")

    page.fill("#login-token", project.token)
    page.click("#login-form button[type=submit]")
    expect(page).to_have_url(re.compile(r"#/instances$"))
    expect(page.locator("#who-project")).to_contain_text(project.project_id)
    expect(page.locator("#nav-admin")).to_be_hidden()  # not an admin token
    expect(page.locator("#instances")).not_to_contain_text("Loading")
    page.reload()  # the session lives in the tab's sessionStorage
    expect(page.locator("#who-project")).to_contain_text(project.project_id)
    shots("logged-in")

    page.click("#logout")
    expect(page).to_have_url(re.compile(r"#/login$"))
    page.goto("/dashboard/#/backups")
    expect(page).to_have_url(re.compile(r"#/login$"))


def test_instance_life_in_the_browser(page: Page, shots: Shots, project: Credentials) -> None:
    """Create (a bad volume size first), watch it go ACTIVE, add a user, back up, restore."""
    suffix = uuid.uuid4().hex[:6]
    src_name, copy_name = f"web-{suffix}", f"web-copy-{suffix}"
    with project.client() as c:
        tiny = flavor_id(c, "tiny")
        try:
            log_in(page, project.token)
            page.click("#new-instance")
            page.fill("#create-name", src_name)
            page.select_option("#create-datastore", "redis")
            page.select_option("#create-flavor", tiny)
            page.locator("#create-users .user-name").fill("app")
            page.locator("#create-users .user-password").fill("app-secret-1")

            # bad input: the API's message next to the form, nothing created
            page.fill("#create-volume", "0")
            page.click("#create-submit")
            expect(page.locator("#create-error")).to_contain_text("volume size must be at least 1")
            expect(page).to_have_url(re.compile(r"#/instances/new$"))
            shots("bad-volume-size")
            assert src_name not in [i["name"] for i in c.get("/instances").json()["instances"]]

            page.fill("#create-volume", "1")
            page.click("#create-submit")
            expect(page).to_have_url(re.compile(r"#/instances/[0-9a-f-]{36}$"))
            iid = page.url.rsplit("/", 1)[1]
            expect(page.locator("#create-error")).to_have_count(0)
            shots("building")
            expect(status_of(page)).to_have_text("ACTIVE", timeout=SLOW)
            expect(status_of(page, 1)).to_have_text("HEALTHY", timeout=SLOW)
            inst = c.get(f"/instances/{iid}").json()["instance"]
            address = f"{inst['ip'][0]}:{inst['port']}"
            expect(page.locator("#connection-string")).to_have_text(address)
            expect(page.locator("#users")).to_contain_text("app")
            # Redis has no databases: the API's 501 message says so in place
            expect(page.locator("#databases-list-error")).to_be_visible()
            expect(page.locator("#metrics-panel")).to_be_visible()
            shots("active")
            with redis.Redis(
                host=inst["ip"][0], port=inst["port"], username="app", password="app-secret-1"
            ) as r:
                r.set("greeting", "hello from the dashboard")

            page.fill("#user-name", "dash")
            page.fill("#user-password", "dash-secret-1")
            page.click("#user-form button[type=submit]")
            expect(page.locator("#user-note")).to_have_text("User dash added.", timeout=60_000)
            expect(page.locator("#users")).to_contain_text("dash")
            with redis.Redis(
                host=inst["ip"][0], port=inst["port"], username="dash", password="dash-secret-1"
            ) as r:
                assert r.ping()
            # the same user again: refused, the message in place, nothing changed
            page.fill("#user-name", "dash")
            page.fill("#user-password", "other-secret-2")
            page.click("#user-form button[type=submit]")
            expect(page.locator("#users-error")).to_be_visible()
            assert page.locator("#users-error").inner_text().strip()
            users = c.get(f"/instances/{iid}/users").json()["users"]
            assert sorted(u["name"] for u in users) == ["app", "dash"]
            with redis.Redis(
                host=inst["ip"][0], port=inst["port"], username="dash", password="dash-secret-1"
            ) as r:
                assert r.ping()  # the old password still works
            shots("user-added")

            page.fill("#backup-name", f"bk-{suffix}")
            page.click("#backup-form button[type=submit]")
            row = page.locator("#instance-backups tr", has_text=f"bk-{suffix}")
            expect(row.locator(".status").first).to_have_text("COMPLETED", timeout=SLOW)
            (backup,) = c.get(f"/instances/{iid}/backups").json()["backups"]
            shots("backup-completed")

            row.locator(".restore-backup").click()
            expect(page).to_have_url(re.compile(r"#/instances/new\?backup="))
            expect(page.locator("#create-backup")).to_have_value(backup["id"])
            expect(page.locator("#create-datastore")).to_have_value("redis")
            page.fill("#create-name", copy_name)
            page.select_option("#create-flavor", tiny)
            shots("restore-form")
            page.click("#create-submit")
            expect(page).to_have_url(re.compile(r"#/instances/[0-9a-f-]{36}$"))
            copy_id = page.url.rsplit("/", 1)[1]
            assert copy_id != iid
            expect(status_of(page)).to_have_text("ACTIVE", timeout=SLOW)
            shots("restored")
            copy = c.get(f"/instances/{copy_id}").json()["instance"]
            with redis.Redis(
                host=copy["ip"][0], port=copy["port"], username="app", password="app-secret-1"
            ) as r:
                assert r.get("greeting") == b"hello from the dashboard"

            page.goto("/dashboard/#/instances")
            for name in (src_name, copy_name):
                expect(
                    page.locator("#instances tr", has_text=name).locator(".status")
                ).to_have_text("ACTIVE")
            shots("list")
        finally:
            delete_instances(c, names=[src_name, copy_name], timeout=180)
            for b in c.get("/backups").json()["backups"]:
                c.delete(f"/backups/{b['id']}")
            wait_for(lambda: not c.get("/backups").json()["backups"], 120, "backups deleted")


def _drawn(page: Page, chart: str) -> int:
    """How many points the chart's SVG draws (0 while it has none)."""
    value = page.locator(f"#{chart} svg").get_attribute("data-points")
    return int(value or 0)


def test_instance_page_charts_its_metrics(page: Page, shots: Shots, project: Credentials) -> None:
    """Real Redis commands on an open session show up in the instance page's SVG charts
    (connections, commands/s, CPU, memory, volume), which keep being redrawn."""
    name = f"web-charts-{uuid.uuid4().hex[:6]}"
    with project.client() as c:
        try:
            r = c.post(
                "/instances",
                json={
                    "instance": {
                        "name": name,
                        "flavorRef": flavor_id(c, "tiny"),
                        "volume": {"size": 1},
                        "datastore": {"type": "redis", "version": "7.0"},
                        "users": [{"name": "app", "password": "app-secret-1"}],
                    }
                },
            )
            assert r.status_code == 200, r.text
            iid = r.json()["instance"]["id"]
            log_in(page, project.token)
            page.goto(f"/dashboard/#/instances/{iid}")
            expect(status_of(page)).to_have_text("ACTIVE", timeout=SLOW)
            expect(page.locator("#metrics-panel h2")).to_have_text("Metrics")
            inst = c.get(f"/instances/{iid}").json()["instance"]
            charts = ("chart-connections", "chart-rate", "chart-cpu", "chart-memory")
            with redis.Redis(
                host=inst["ip"][0], port=inst["port"], username="app", password="app-secret-1"
            ) as db:

                def drawn_everywhere() -> bool:
                    for n in range(100):
                        db.incr("visits", n)
                    return all(_drawn(page, chart) >= 2 for chart in charts)

                wait_for(drawn_everywhere, 120, "every chart drawn with points", 0.5)
                first = _drawn(page, "chart-connections")
                wait_for(
                    lambda: _drawn(page, "chart-connections") > first,
                    60,
                    "the charts redrawn with newer samples",
                    0.5,
                )
            expect(page.locator("#chart-rate figcaption")).to_contain_text("Commands/s")
            expect(page.locator("#chart-cpu figcaption")).to_contain_text("CPU %")
            assert _drawn(page, "chart-volume") >= 1
            line = page.locator("#chart-memory svg path.line").get_attribute("d") or ""
            assert line.startswith("M") and " L" in line, line
            expect(page.locator("#chart-memory .chart-latest")).to_contain_text("MiB")
            expect(page.locator("#chart-lag")).to_have_count(0)  # not a replica
            expect(page.locator("#metrics-error")).to_be_hidden()
            shots("charts-last-hour")

            page.select_option("#metrics-window", "5")
            expect(page.locator("#chart-connections .tick").first).to_be_visible()
            wait_for(lambda: _drawn(page, "chart-memory") >= 2, 30, "the 5-minute window drawn")
            expect(page.locator("#metrics-note")).to_contain_text("points")
            shots("charts-5-minutes")
        finally:
            delete_instances(c, names=[name], timeout=180)


def test_forms_show_the_api_messages_and_admin_view(
    page: Page, shots: Shots, server: CofferServer, admin: Credentials
) -> None:
    """Configuration groups, clusters and quotas refuse bad input with the API's message in
    place and change nothing; the admin view shows hosts, all instances, versions."""
    suffix = uuid.uuid4().hex[:6]
    group, cluster = f"web-cfg-{suffix}", f"web-cl-{suffix}"
    with admin.client() as c:
        tiny = flavor_id(c, "tiny")
        try:
            log_in(page, admin.token)
            page.click("#nav-admin")
            expect(page.locator("#hosts .status").first).to_have_text("ALIVE")
            expect(page.locator("#datastore-versions")).to_contain_text("redis")
            expect(page.locator("#quotas")).to_contain_text("instances")
            before = c.get(f"/mgmt/quotas/{admin.project_id}").json()["quotas"]
            page.select_option("#quota-resource", "instances")
            page.fill("#quota-limit", "-5")
            page.click("#quota-form button[type=submit]")
            expect(page.locator("#quota-error")).to_contain_text("must be an integer >= -1")
            assert c.get(f"/mgmt/quotas/{admin.project_id}").json()["quotas"] == before
            shots("admin")

            page.goto("/dashboard/#/configurations")
            page.fill("#config-name", group)
            page.select_option("#config-datastore", "redis")
            page.fill("#config-values", '{"timeout": -1}')
            page.click("#config-form button[type=submit]")
            expect(page.locator("#config-create-error")).to_contain_text("timeout")
            assert group not in [
                g["name"] for g in c.get("/configurations").json()["configurations"]
            ]
            page.fill("#config-values", "{not json")
            page.click("#config-form button[type=submit]")
            expect(page.locator("#config-create-error")).to_contain_text("not valid JSON")
            shots("config-refused")
            page.fill("#config-values", '{"timeout": 30}')
            page.click("#config-form button[type=submit]")
            expect(page).to_have_url(re.compile(r"#/configurations/[0-9a-f-]+$"))
            gid = page.url.rsplit("/", 1)[1]
            value = page.locator('#config-values-table tr[data-key="timeout"] .config-value')
            expect(value).to_have_value("30")
            value.fill("-3")
            page.click("#config-save")
            expect(page.locator("#config-values-error")).to_contain_text("timeout")
            shots("config-value-refused")
            assert c.get(f"/configurations/{gid}").json()["configuration"]["values"] == {
                "timeout": 30
            }
            value.fill("60")
            page.click("#config-save")
            expect(page.locator("#config-note")).to_contain_text("Saved")
            assert c.get(f"/configurations/{gid}").json()["configuration"]["values"] == {
                "timeout": 60
            }

            page.goto("/dashboard/#/clusters")
            page.fill("#cluster-name", cluster)
            page.select_option("#cluster-datastore", "redis")
            page.select_option("#cluster-flavor", tiny)
            page.fill("#cluster-count", "1")
            page.click("#cluster-form button[type=submit]")
            expect(page.locator("#cluster-create-error")).to_contain_text("masters")
            assert cluster not in [x["name"] for x in c.get("/clusters").json()["clusters"]]
            shots("cluster-refused")
        finally:
            delete_configurations(c, names=[group])
