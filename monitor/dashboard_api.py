"""``GET /dashboard``: one page over the ledger and the engines, and the JSON it draws from.

The page is static (HTML, one script, uPlot vendored under ``static/vendor``: no build step, it
ships in the wheel); ``GET /dashboard/api/view?range=24h`` answers every panel in one call so
the first view is one round trip. With auth on, the page and its data need the admin key: as
``Authorization: Bearer`` (scripts, tests) or a cookie the page's login form sets, which holds an
HMAC of the admin key, never the key (it proves the key was typed; it opens nothing else). The
assets are public code and need nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from fastapi import APIRouter, Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response

from access.admin_api import require_admin
from contracts.engine_state import EngineState
from contracts.errors import AuthenticationError, InvalidRequestError, NotFoundError, PermissionDeniedError
from costbook.config import BudgetConfig
from costbook.prices import ModelPrice
from costbook.savings import savings
from monitor.evaluator import alert_rows
from monitor.gpu import gpu_panel
from monitor.signals import budget_status
from monitor.view import ViewRange, ledger_view

__all__ = ["DashboardSources", "dashboard_router"]

STATIC = Path(__file__).with_name("static")
COOKIE = "spillover_dashboard"
_RANGES = {"1h": dt.timedelta(hours=1), "6h": dt.timedelta(hours=6), "24h": dt.timedelta(days=1), "7d": dt.timedelta(days=7),
           "30d": dt.timedelta(days=30)}
_ASSET = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")


@dataclass(frozen=True)
class DashboardSources:
    """Where each panel's data comes from (the composition root wires them)."""

    engine: sa.Engine
    auth_enabled: bool
    admin_key: str | None
    budgets: list[BudgetConfig]
    counterfactual: Mapping[str, ModelPrice | None]
    engine_states: Callable[[], Mapping[str, EngineState]]
    steering_states: Callable[[], Mapping[str, Any]]
    gpu_metrics_url: str | None = None
    #: A served model's list price (None: not a hosted model), for the savings per lever.
    listed_price: Callable[[str], ModelPrice | None] = lambda model: None
    #: Each configured experiment's report (the composition root wires experiments.report).
    experiment_reports: Callable[[], Mapping[str, Any]] = dict


def dashboard_router(sources: DashboardSources, *, clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> APIRouter:
    router = APIRouter()
    gpu_client = httpx.AsyncClient()

    def allowed(request: Request) -> None:
        """401 unless auth is off or the request carries the admin key (header or cookie): the
        dashboard shows every team's spend, so any other key is as good as none."""
        if not sources.auth_enabled:
            return
        cookie = request.cookies.get(COOKIE)
        if cookie and sources.admin_key and hmac.compare_digest(cookie, _session_token(sources.admin_key)):
            return
        try:
            require_admin(request, sources.admin_key)
        except PermissionDeniedError as exc:
            raise AuthenticationError(f"{exc.message} The dashboard needs the admin key.", code="not_admin") from None

    @router.get("/dashboard", include_in_schema=False)
    async def page(request: Request) -> Response:
        try:
            allowed(request)
        except AuthenticationError as exc:
            return HTMLResponse(_login_page(exc.message), status_code=401)
        return FileResponse(STATIC / "dashboard.html", media_type="text/html")

    @router.post("/dashboard/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = await request.form()
        key = str(form.get("key", "")).strip()
        if not sources.admin_key or not hmac.compare_digest(key.encode(), sources.admin_key.encode()):
            return HTMLResponse(_login_page("That is not the admin key."), status_code=401)
        response = RedirectResponse("/dashboard", status_code=303)
        response.set_cookie(COOKIE, _session_token(sources.admin_key), httponly=True, samesite="strict", path="/dashboard",
                            secure=request.url.scheme == "https")
        return response

    @router.get("/dashboard/assets/{name:path}", include_in_schema=False)
    async def asset(name: str) -> Response:
        path = STATIC / name
        if not _ASSET.fullmatch(name) or not path.is_file():
            raise NotFoundError(f"No dashboard asset '{name}'.", code="not_found")
        return FileResponse(path)

    @router.get("/dashboard/api/view", include_in_schema=False)
    async def view(request: Request, range: str | None = None, since: str | None = None, until: str | None = None,
                   top: int = 10) -> JSONResponse:
        allowed(request)
        span = _span(range, since, until, clock())
        if not 1 <= top <= 100:
            raise InvalidRequestError("top must be between 1 and 100.", param="top")
        started = time.perf_counter()

        def from_database() -> tuple[dict[str, Any], ...]:
            ledger = ledger_view(sources.engine, span, top_n=top, counterfactual=sources.counterfactual)
            with sources.engine.connect() as connection:
                budgets = budget_status(connection, sources.budgets, span.until)
                by_lever = savings(connection, span.since, sources.counterfactual, sources.listed_price)
            return ledger, budgets, alert_rows(sources.engine, span.until), by_lever, dict(sources.experiment_reports())

        (ledger, budgets, alerts, by_lever, experiments), gpu = await asyncio.gather(asyncio.to_thread(from_database),
                                                                                     gpu_panel(gpu_client, sources.gpu_metrics_url))
        body = {
            "ledger": ledger, "budgets": budgets, "alerts": alerts, "gpu": gpu, "savings": by_lever, "experiments": experiments,
            "engines": {model: state.to_dict() for model, state in sources.engine_states().items()},
            "cache_steering": {route: asdict(state) if hasattr(state, "__dataclass_fields__") else state
                               for route, state in sources.steering_states().items()},
            "query_ms": round((time.perf_counter() - started) * 1000, 1),
        }
        return JSONResponse(body)

    return router


def _span(name: str | None, since: str | None, until: str | None, now: dt.datetime) -> ViewRange:
    if since is not None:
        try:
            start = _parse_time(since)
            end = _parse_time(until) if until else now
        except ValueError:
            raise InvalidRequestError("since and until must be ISO 8601 times.", param="since") from None
        if end <= start:
            raise InvalidRequestError("until must be after since.", param="until")
        return ViewRange(start, end)
    window = _RANGES.get(name or "24h")
    if window is None:
        raise InvalidRequestError(f"range must be one of {', '.join(_RANGES)}.", param="range")
    return ViewRange(now - window, now)


def _parse_time(text: str) -> dt.datetime:
    at = dt.datetime.fromisoformat(text)
    return at if at.tzinfo else at.replace(tzinfo=dt.UTC)


def _session_token(admin_key: str) -> str:
    return hmac.new(admin_key.encode(), b"spillover-dashboard-session", hashlib.sha256).hexdigest()


def _login_page(message: str) -> str:
    import html

    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>spillover: sign in</title>"
        "<link rel='stylesheet' href='/dashboard/assets/dashboard.css'></head><body class='login'>"
        f"<form method='post' action='/dashboard/login'><h1>spillover</h1><p>{html.escape(message)}</p>"
        "<label>Admin key <input type='password' name='key' autocomplete='off' autofocus></label>"
        "<button type='submit'>Open the dashboard</button></form></body></html>"
    )
