"""``/dashboard`` on the running ingress app (scripted engines, the real pipeline, SQLite): the
admin key guards the page and its data, and a real browser (headless Chromium) draws every panel
from a seeded ledger and shows empty states on an empty one."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, Gauge, make_asgi_app

from costbook.ledger_store import SqlLedgerStore
from experiments.config import ExperimentConfig
from spillover.app import create_app
from stores.sql import Database, database_url
from tests.costbook.rows import row
from tests.helpers import UvicornThread, wait_for
from tests.serving.scripted_engines import ScriptedEngines, scripted_config

ADMIN = "sk-admin-dashboard-test"
PANELS = ("spend", "saving", "experiments", "alerts", "tokens", "top-team", "top-feature", "top-model", "top-user", "cache", "spill", "budgets", "engines",
          "gpu")


AB = ExperimentConfig.model_validate({"route": "m", "variants": {"a": {"weight": 1}, "b": {"weight": 1, "settings": {"cache": {
    "enabled": False}}}}})


def config(tmp_path: Path, *, auth: bool, gpu_url: str | None = None, steered: bool = False) -> Any:
    env = {
        "SPILLOVER__AUTH__ENABLED": "true" if auth else "false",
        "SPILLOVER__STORES__SQLITE_PATH": str(tmp_path / "spillover.db"),
        "SPILLOVER__STORES__SPOOL_DIR": str(tmp_path / "spool"),
        "SPILLOVER__AUTH__SECRET_FILE": str(tmp_path / "key-secret"),
        "SPILLOVER__MONITOR__ALERTS__EVALUATE_EVERY_S": "5",
        "SPILLOVER__COSTS__BUDGETS": '[{"scope": "team", "name": "research", "daily_usd": 5}]',
    }
    if gpu_url:
        env["SPILLOVER__MONITOR__GPU_METRICS_URL"] = gpu_url
    if steered:  # route m's semantic cache earns its threshold from its own checks: shadow only at first
        env |= {"SPILLOVER__CACHE__SEMANTIC__ENABLED": "true", "SPILLOVER__CACHE__SEMANTIC__STEERING": '{"start": "shadow"}'}
    config = scripted_config(env)
    return config.model_copy(update={"experiments": {"ab": AB}}) if gpu_url else config  # the browser's view has an experiment


def seed(tmp_path: Path) -> None:
    """A day of traffic: local, hosted, cached, an error; and a spend spike against last week."""
    now = dt.datetime.now(dt.UTC)
    database = Database(database_url(None, str(tmp_path / "spillover.db")))
    database.migrate()
    store = SqlLedgerStore(database)
    rows = [dataclasses.replace(row(f"hist{d}"), at=now - dt.timedelta(days=d, minutes=10), cost_micro_usd=1_000_000, team="research",
                                user_name="ann", feature="search") for d in range(1, 8)]
    for i in range(40):
        kind = i % 4
        rows.append(dataclasses.replace(
            row(f"r{i}"), at=now - dt.timedelta(minutes=3 + i * 20), team=("research", "support")[i % 2], user_name=f"user{i % 5}",
            feature=("search", "chat")[i % 2], cost_micro_usd=(200_000, 0, 0, 50_000)[kind], destination=("openai", "cache", None, "local")[kind],
            cache_result="exact" if kind == 1 else "miss", status="error" if kind == 2 else "ok",
            spill_reason=("cold_start", None, None, "local_ok")[kind], experiment="ab", variant=("a", "b")[(i // 2) % 2]))
    rows.append(dataclasses.replace(row("spike"), at=now - dt.timedelta(minutes=5), cost_micro_usd=4_000_000, team="research",
                                    user_name="ann", feature="search"))
    store.insert(rows)
    database.dispose()


@pytest.fixture
def gpu_exporter() -> Iterator[str]:
    """A Prometheus text endpoint with dcgm-exporter's names, as a GPU node's exporter serves."""
    registry = CollectorRegistry()
    labels = ["gpu", "UUID", "modelName", "Hostname"]
    for name, value in (("DCGM_FI_DEV_GPU_UTIL", 87.0), ("DCGM_FI_DEV_FB_USED", 61000.0), ("DCGM_FI_DEV_FB_FREE", 20000.0),
                        ("DCGM_FI_DEV_POWER_USAGE", 412.5)):
        Gauge(name, name, labels, registry=registry).labels("0", "GPU-1", "NVIDIA H100 80GB HBM3", "node-a").set(value)
    with UvicornThread(make_asgi_app(registry)) as server:
        yield server.base_url + "/metrics"


def serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, auth: bool, gpu_url: str | None = None, steered: bool = False) -> UvicornThread:
    monkeypatch.setenv("SPILLOVER_ADMIN_KEY", ADMIN)
    return UvicornThread(create_app(config(tmp_path, auth=auth, gpu_url=gpu_url, steered=steered), ScriptedEngines(), keys_and_costs=True))


def test_the_admin_key_guards_page_and_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seed(tmp_path)
    with serve(tmp_path, monkeypatch, auth=True) as app:
        base = app.base_url
        admin = {"authorization": f"Bearer {ADMIN}"}
        created = httpx.post(base + "/admin/keys", json={"user": "u", "team": "t"}, headers=admin)
        user = {"authorization": f"Bearer {created.json()['key']}"}
        assert httpx.get(base + "/dashboard").status_code == 401
        page = httpx.get(base + "/dashboard", headers=user)
        assert page.status_code == 401 and "<form" in page.text, "a user's key opens nothing: the login form"
        assert httpx.get(base + "/dashboard/api/view", headers=user).json()["error"]["code"] == "not_admin"
        assert httpx.get(base + "/dashboard", headers=admin).status_code == 200
        assert httpx.post(base + "/dashboard/login", data={"key": "wrong"}).status_code == 401
        with httpx.Client(base_url=base) as browser:
            login = browser.post("/dashboard/login", data={"key": ADMIN})
            assert login.status_code == 303 and ADMIN not in login.headers["set-cookie"]
            wait_for(lambda: browser.get("/dashboard/api/view").json()["ledger"]["totals"]["requests"] > 0, timeout_s=30,
                     what="the first rollup")
            view = browser.get("/dashboard/api/view?range=7d").json()
        assert view["ledger"]["bucket"] == "day" and view["budgets"][0]["name"] == "research"
        bad = httpx.get(base + "/dashboard/api/view?range=2y", headers=admin)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "range"
        assert httpx.get(base + "/dashboard/assets/..%2F..%2Fconfig.py").status_code == 404
        assert httpx.get(base + "/dashboard/assets/vendor/uplot-1.6.31/LICENSE").status_code == 200


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("Debian's chromium is missing: scripts/services.sh installs it")
    return found


def browse(url: str, screenshot: Path) -> str:
    """The page's DOM after its script ran, and a screenshot of it."""
    common = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--virtual-time-budget=15000",
              "--window-size=1400,2600", f"--user-data-dir={screenshot.parent / 'chromium-profile'}"]
    subprocess.run([*common, f"--screenshot={screenshot}", url], check=True, capture_output=True, timeout=120)
    return subprocess.run([*common, "--dump-dom", url], check=True, capture_output=True, text=True, timeout=120).stdout


def panel_states(dom: str) -> dict[str, str]:
    return dict(re.findall(r'data-panel="([a-z-]+)"[^>]*data-state="([a-z]+)"', dom))


def test_a_browser_draws_every_panel_from_the_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gpu_exporter: str) -> None:
    seed(tmp_path)
    output = Path(os.environ.get("SPILLOVER_TEST_OUTPUT", tmp_path))
    output.mkdir(parents=True, exist_ok=True)
    with serve(tmp_path, monkeypatch, auth=False, gpu_url=gpu_exporter, steered=True) as app:
        wait_for(lambda: any(a["state"] == "firing" for a in httpx.get(app.base_url + "/dashboard/api/view").json()["alerts"]),
                 timeout_s=30, what="the spend alert")
        steering = httpx.get(app.base_url + "/dashboard/api/view").json()["cache_steering"]
        dom = browse(app.base_url + "/dashboard", output / "dashboard.png")
    assert steering["m"] == {"threshold": None, "estimate": None, "bound": 1.0, "checks": 0, "paid_checks": 0}, \
        "the steered route, from the cache stage's own steering: shadow only, no evidence yet"
    assert set(steering) == {"m", "m~ab.a"}, "a variant's route steers (and caches) apart; variant b turns the cache off"
    cache_panel = re.search(r'data-panel="cache".*?</section>', dom, re.DOTALL)
    assert cache_panel is not None and re.search(r"<td[^>]*>m</td>\s*<td[^>]*>shadow only</td>", cache_panel.group()), "its row in the cache panel"
    assert 'data-loaded="true"' in dom and "data-error" not in dom
    assert panel_states(dom) == {p: "drawn" for p in PANELS}, panel_states(dom)
    assert dom.count("uplot") >= 4, "the four charts drew"
    assert "self hosting and spillover" in dom and "ab on m" in dom, "the savings per lever and the experiment's variants"
    assert (output / "dashboard.png").stat().st_size > 20_000
    print(f"screenshot: {output / 'dashboard.png'}")


def test_an_empty_ledger_shows_empty_states(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with serve(tmp_path, monkeypatch, auth=False) as app:
        dom = browse(app.base_url + "/dashboard", tmp_path / "empty.png")
    states = panel_states(dom)
    assert 'data-loaded="true"' in dom and "data-error" not in dom
    assert states["engines"] == "drawn" and states["budgets"] == "drawn", "the engine's state and the configured budget exist"
    assert {p for p, s in states.items() if s == "empty"} == set(PANELS) - {"engines", "budgets"}
    assert "No GPU exporter configured" in dom
