"""Alert notifications by webhook: Slack-compatible JSON or Alertmanager's webhook payload.

Sending never blocks a request or the evaluator: transitions go on a queue and one task posts
them, each retried with exponential backoff (full jitter, the upstream's ``Retry-After`` first)
on a timeout, a connection error, 429 or 5xx, up to the webhook's ``attempts``; a 4xx other than
429 is final. Failures are logged with the webhook's host only: a Slack webhook's path is its
credential.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

from fallback.retry import backoff_s, retry_after_s
from monitor.alerting import Transition
from monitor.config import WebhookConfig

__all__ = ["Notifier", "alertmanager_payload", "slack_payload"]

logger = logging.getLogger(__name__)

_EMOJI = {"fire": ":rotating_light:", "repeat": ":rotating_light:", "resolve": ":white_check_mark:"}


def slack_payload(transition: Transition) -> dict[str, Any]:
    o = transition.observation
    state = "RESOLVED" if transition.kind == "resolve" else "FIRING"
    text = f"{_EMOJI[transition.kind]} [{state}] {o.rule} ({o.scope}{': ' + o.subject if o.subject else ''}): {o.summary}"
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}


def alertmanager_payload(transition: Transition, external_url: str = "") -> dict[str, Any]:
    """Alertmanager's webhook body (version 4) with one alert."""
    o = transition.observation
    status = "resolved" if transition.kind == "resolve" else "firing"
    labels = {"alertname": o.rule, "scope": o.scope, "subject": o.subject, "source": "spillover-ledger"}
    alert = {"status": status, "labels": labels,
             "annotations": {"summary": o.summary, "value": f"{o.value:g}", "threshold": f"{o.threshold:g}"},
             "startsAt": transition.started_at.isoformat(),
             "endsAt": transition.at.isoformat() if status == "resolved" else "0001-01-01T00:00:00Z",
             "generatorURL": external_url, "fingerprint": o.id}
    return {"version": "4", "groupKey": o.id, "truncatedAlerts": 0, "status": status, "receiver": "spillover",
            "groupLabels": {"alertname": o.rule}, "commonLabels": labels, "commonAnnotations": alert["annotations"],
            "externalURL": external_url, "alerts": [alert]}


class Notifier:
    """Posts each transition to every configured webhook, in the background."""

    def __init__(self, webhooks: list[WebhookConfig], *, client: httpx.AsyncClient | None = None,
                 sleep: Callable[[float], Any] = asyncio.sleep, queue_size: int = 1000) -> None:
        self._targets = [(w, os.environ.get(w.url_env, "")) for w in webhooks]
        for webhook, url in self._targets:
            if not url:
                logger.warning("alert webhook %s is configured but $%s is empty: its alerts are not sent", webhook.format, webhook.url_env)
        self._client = client
        self._sleep = sleep
        self._queue: asyncio.Queue[Transition] = asyncio.Queue(queue_size)
        self._task: asyncio.Task[None] | None = None
        #: Per webhook format and outcome, how many posts ended so (tests and the dashboard read it).
        self.outcomes: dict[str, int] = {}

    def start(self) -> None:
        if self._task is None and any(url for _, url in self._targets):
            self._task = asyncio.get_running_loop().create_task(self._run(), name="alert-webhooks")

    def notify(self, transition: Transition) -> None:
        """Queue a transition; a full queue drops it (logged) rather than hold anyone up."""
        if not any(url for _, url in self._targets):
            return
        try:
            self._queue.put_nowait(transition)
        except asyncio.QueueFull:
            logger.error("alert webhook queue full: dropped %s %s", transition.kind, transition.observation.id)

    async def drain(self) -> None:
        """Wait until every queued transition has been sent or given up on (tests, shutdown)."""
        await self._queue.join()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    async def _run(self) -> None:
        client = self._client = self._client or httpx.AsyncClient()
        while True:
            transition = await self._queue.get()
            try:
                for webhook, url in self._targets:
                    if url:
                        await self._post(client, webhook, url, transition)
            finally:
                self._queue.task_done()

    async def _post(self, client: httpx.AsyncClient, webhook: WebhookConfig, url: str, transition: Transition) -> None:
        body = slack_payload(transition) if webhook.format == "slack" else alertmanager_payload(transition)
        host = urlsplit(url).netloc
        for attempt in range(webhook.attempts):
            retry_after = None
            try:
                response = await client.post(url, json=body, timeout=webhook.timeout_s)
                if response.status_code < 300:
                    self._count(webhook.format, "sent")
                    return
                if response.status_code != 429 and response.status_code < 500:
                    logger.error("alert webhook %s at %s refused %s: %d", webhook.format, host, transition.observation.id, response.status_code)
                    self._count(webhook.format, "refused")
                    return
                retry_after = retry_after_s(response.headers)
                problem = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                problem = type(exc).__name__
            logger.warning("alert webhook %s at %s failed (%s), attempt %d of %d", webhook.format, host, problem, attempt + 1, webhook.attempts)
            if attempt + 1 < webhook.attempts:
                await self._sleep(backoff_s(attempt, retry_after=retry_after, base_s=1.0, cap_s=30.0))
        self._count(webhook.format, "failed")

    def _count(self, fmt: str, outcome: str) -> None:
        key = f"{fmt}:{outcome}"
        self.outcomes[key] = self.outcomes.get(key, 0) + 1
