"""Alert webhooks against a receiving HTTP server on loopback: both formats, retries with
backoff on 500s and timeouts, a final 4xx, and no webhook secret in any log line."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from monitor.alerting import Observation, Transition
from monitor.config import WebhookConfig
from monitor.webhooks import Notifier
from tests.helpers import UvicornThread

SECRET_PATH = "/services/T000/B000/xoxb-secret-token"
T0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


class Receiver:
    """Answers each POST with the next planned status (``"hang"``: never within the timeout)."""

    def __init__(self) -> None:
        self.plan: list[int | str] = []
        self.bodies: list[dict] = []

    async def hook(self, request: Request) -> Response:
        body = await request.json()
        outcome = self.plan.pop(0) if self.plan else 200
        if outcome == "hang":
            await asyncio.sleep(5)
        self.bodies.append(body)
        return JSONResponse({"ok": True}, status_code=200 if outcome == "hang" else int(outcome))


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    r = Receiver()
    with UvicornThread(Starlette(routes=[Route(SECRET_PATH, r.hook, methods=["POST"])])) as server:
        yield r, server.base_url + SECRET_PATH


def transition(kind: str = "fire") -> Transition:
    o = Observation("error_spike", "global", "", 0.1, 0.05, 0.033, True, "Error rate over the last 5 min is 10.0%")
    return Transition(kind, o, T0, T0 + dt.timedelta(minutes=5 if kind == "resolve" else 0))


async def send(notifier: Notifier, *transitions: Transition) -> None:
    notifier.start()
    for t in transitions:
        notifier.notify(t)
    await asyncio.wait_for(notifier.drain(), 20)
    await notifier.aclose()


async def no_wait(_: float) -> None:
    return None


async def test_slack_and_alertmanager_bodies(receiver: tuple[Receiver, str], monkeypatch: pytest.MonkeyPatch) -> None:
    r, url = receiver
    monkeypatch.setenv("HOOK_SLACK", url)
    monkeypatch.setenv("HOOK_AM", url)
    notifier = Notifier([WebhookConfig(url_env="HOOK_SLACK", format="slack"), WebhookConfig(url_env="HOOK_AM", format="alertmanager")])
    await send(notifier, transition("fire"), transition("resolve"))
    slack_fire, am_fire, slack_resolve, am_resolve = r.bodies
    assert slack_fire["text"].startswith(":rotating_light: [FIRING] error_spike") and slack_fire["blocks"][0]["type"] == "section"
    assert "[RESOLVED]" in slack_resolve["text"]
    assert am_fire["version"] == "4" and am_fire["status"] == "firing" and am_fire["alerts"][0]["labels"]["alertname"] == "error_spike"
    assert am_resolve["alerts"][0]["status"] == "resolved" and am_resolve["alerts"][0]["endsAt"].startswith("2026-12-01T00:05")
    assert notifier.outcomes == {"slack:sent": 2, "alertmanager:sent": 2}


async def test_500s_and_timeouts_are_retried_and_logged_without_the_secret(receiver: tuple[Receiver, str], monkeypatch: pytest.MonkeyPatch,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    r, url = receiver
    monkeypatch.setenv("HOOK", url)
    r.plan = [500, "hang", 200]
    waits: list[float] = []

    async def record_wait(seconds: float) -> None:
        waits.append(seconds)

    notifier = Notifier([WebhookConfig(url_env="HOOK", format="slack", timeout_s=0.5, attempts=4)], sleep=record_wait)
    with caplog.at_level(logging.WARNING, logger="monitor.webhooks"):
        await send(notifier, transition())
    assert notifier.outcomes == {"slack:sent": 1} and len(waits) == 2
    assert 0 <= waits[0] <= 1.0 and 0 <= waits[1] <= 2.0, "full-jitter exponential backoff from 1 s"
    messages = [rec.getMessage() for rec in caplog.records]
    assert any("HTTP 500" in m for m in messages) and any("ReadTimeout" in m for m in messages)
    assert not any("secret" in m or SECRET_PATH in m for m in messages), messages


async def test_a_4xx_is_final_and_a_dead_webhook_gives_up(receiver: tuple[Receiver, str], monkeypatch: pytest.MonkeyPatch) -> None:
    r, url = receiver
    monkeypatch.setenv("HOOK", url)
    monkeypatch.setenv("DEAD", "http://127.0.0.1:9/hook")  # nothing listens on the discard port
    r.plan = [404]
    notifier = Notifier([WebhookConfig(url_env="HOOK", format="slack"), WebhookConfig(url_env="DEAD", format="alertmanager", attempts=3)],
                        sleep=no_wait)
    await send(notifier, transition())
    assert notifier.outcomes == {"slack:refused": 1, "alertmanager:failed": 1}
    assert len(r.bodies) == 1
