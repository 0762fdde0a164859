"""The batch worker: runs in-progress batches' lines on idle local capacity, one step at a time,
and finalizes batches whose lines are all done (or that were cancelled or ran out of window).

A line starts only when :data:`Headroom` says its model's engines have room: nothing waiting,
no interactive request running, KV-cache use under the bound, fewer than ``max_in_flight`` batch
lines already on it. So an interactive request never queues behind a batch line: at most
``max_in_flight`` lines per model share the engine with it, and none starts while it is there.
Lines go through the ingress's own pipeline after authentication (:data:`RunLine`), pinned
local; their result is written (state ``pending`` -> ``done``/``failed``) before they count.

**Deadline.** With a hosted batch API configured (:class:`HandOff`), the worker watches each
batch's local throughput (lines answered since it started) and, once it has watched long enough,
predicts when the pending lines would be done; if that is later than ``handoff_margin_s`` before
the window closes, it uploads the pending lines to the hosted batch API (at its batch price),
marks them ``hosted``, polls that batch, and maps its answers back by ``custom_id``. Lines
already running locally finish locally. A batch whose window closes first ends ``expired``,
with every answer it got.

Everything the worker knows lives in the database: after a restart, ``in_progress`` batches go
on with their pending lines (a line cut by the restart runs again once its claim lapses,
``claim_s``; its ledger row, keyed by the line, is written once), a handed-over batch is polled
again, and a batch caught ``finalizing`` is finalized again, to the same files. A worker claims
each line before it runs it (and renews the claim while it runs), so with several ingress
replicas on one database a line runs on one of them; the hand-off to a hosted batch API takes
no claim of its own yet (two replicas deciding it at the same moment could both send it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from costlevers.batch.budget import BudgetHold, owner_of
from costlevers.batch.config import BatchConfig, HostedBatchConfig
from costlevers.batch.files import FileBytes
from costlevers.batch.hosted import HostedBatches
from costlevers.batch.store import BatchStore

__all__ = ["BatchWorker", "HandOff", "Headroom", "RunLine", "output_file_ids"]

logger = logging.getLogger(__name__)

#: May a batch line start on this model now, given how many of this worker's lines run on it?
Headroom = Callable[[str, int], bool]
#: One line through the pipeline: (batch row, line row) -> (state ``done``/``failed``, OpenAI result object).
RunLine = Callable[[dict[str, Any], dict[str, Any]], Awaitable[tuple[str, dict[str, Any]]]]


@dataclass
class HandOff:
    """Where lines that will not finish locally go, and how their answers are billed."""

    api: HostedBatches
    config: HostedBatchConfig
    #: A line's body as the provider must get it (its model named the provider's way).
    provider_body: Callable[[dict[str, Any]], dict[str, Any]]
    #: A hosted answer's ledger row: (batch row, line row, the line's result) -> recorded.
    record: Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], Awaitable[None]]


def output_file_ids(batch_id: str) -> tuple[str, str]:
    """The output and error file ids: fixed per batch, so finalizing twice writes the same files."""
    return f"file-{batch_id}-output", f"file-{batch_id}-errors"


class BatchWorker:
    def __init__(self, store: BatchStore, file_bytes: FileBytes, config: BatchConfig, *, run_line: RunLine, headroom: Headroom,
                 hand_off: HandOff | None = None, budget: BudgetHold | None = None, clock: Callable[[], float] = time.time) -> None:
        self._hand_off = hand_off
        self._budget = budget
        #: This worker's name on its claims: one per process, so a restart claims anew.
        self.name = f"w-{uuid.uuid4().hex[:12]}"
        self._renewed = 0.0
        self._polled: dict[str, float] = {}
        self._store = store
        self._files = file_bytes
        self._config = config
        self._run_line = run_line
        self._headroom = headroom
        self._clock = clock
        #: (batch id, line) -> its task; per model, how many run.
        self._flying: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._per_model: dict[str, int] = {}

    async def run_forever(self) -> None:
        while True:
            try:
                await self.step()
            except Exception:
                logger.exception("batch worker step failed; retrying")
            await asyncio.sleep(self._config.poll_s)

    async def step(self) -> None:
        if self._flying and self._clock() - self._renewed >= self._config.claim_s / 3:
            self._renewed = self._clock()
            await asyncio.to_thread(self._store.renew, self.name, list(self._flying), self._clock() + self._config.claim_s)
        for batch in await asyncio.to_thread(self._store.active):
            flying = [line for (bid, line) in self._flying if bid == batch["id"]]
            if batch["status"] == "finalizing":
                await self._finalize(batch, "completed")
            elif batch["status"] == "cancelling":
                if not flying:
                    await self._finalize(batch, "cancelled")
            elif self._clock() >= batch["expires_at"]:
                if not flying:
                    await self._finalize(batch, "expired")
            else:
                counts = await asyncio.to_thread(self._store.counts, batch["id"])
                if batch["hosted_batch_id"]:
                    await self._follow_hosted(batch, counts)
                elif (self._hand_off is not None and batch["endpoint"] in self._hand_off.api.endpoints and counts["pending"]
                      and self._too_slow(batch, counts)):
                    await self._send_to_hosted(batch, flying)
                    continue
                started = await self._start_lines(batch, flying) if counts["pending"] else 0
                if not flying and not started and not counts["pending"] and not counts["hosted"]:
                    await self._finalize(batch, "completed")

    def predicted_end(self, batch: dict[str, Any], counts: dict[str, int]) -> float:
        """When the pending lines would be done at the local rate seen so far (inf: none answered yet)."""
        now = self._clock()
        answered = counts["completed"] + counts["failed"]
        elapsed = now - (batch["in_progress_at"] or batch["created_at"])
        if answered == 0 or elapsed <= 0:
            return float("inf")
        return now + counts["pending"] * elapsed / answered

    def _too_slow(self, batch: dict[str, Any], counts: dict[str, int]) -> bool:
        assert self._hand_off is not None
        watched = self._clock() - (batch["in_progress_at"] or batch["created_at"])
        if watched < self._hand_off.config.min_observe_s:
            return False
        return self.predicted_end(batch, counts) > batch["expires_at"] - self._hand_off.config.handoff_margin_s

    async def _send_to_hosted(self, batch: dict[str, Any], flying: list[int]) -> None:
        """Upload every pending line not already running to the hosted batch API."""
        assert self._hand_off is not None
        pending = await asyncio.to_thread(self._store.pending, batch["id"], skip=flying, limit=self._config.max_lines, worker=self.name,
                                          now=self._clock())
        if not pending:
            return
        bodies = [(line["custom_id"], self._hand_off.provider_body(json.loads(line["body"]))) for line in pending]
        hosted_id = await self._hand_off.api.submit(batch["endpoint"], bodies)
        await asyncio.to_thread(self._store.hand_off, batch["id"], [line["line"] for line in pending], hosted_id)
        logger.info("batch %s: %d lines handed to hosted batch %s (local rate too slow for the window)", batch["id"], len(pending), hosted_id)

    async def _follow_hosted(self, batch: dict[str, Any], counts: dict[str, int]) -> None:
        """Poll the hosted batch (every ``poll_s``); when it has ended, take its answers in."""
        assert self._hand_off is not None
        if not counts["hosted"] or self._clock() - self._polled.get(batch["id"], 0.0) < self._hand_off.config.poll_s:
            return
        self._polled[batch["id"]] = self._clock()
        remote, answers = await self._hand_off.api.poll(batch["hosted_batch_id"])
        if answers is None:
            return
        for line in await asyncio.to_thread(self._store.in_state, batch["id"], "hosted"):
            answer = answers.get(self._hand_off.api.wire_id(line["custom_id"]))
            status = ((answer or {}).get("response") or {}).get("status_code")
            if answer is None:
                result = {"response": None, "error": {"code": "hosted_batch_" + remote,
                                                      "message": "The hosted batch returned no answer for this line."}}
            else:
                result = answer
            state = "done" if status is not None and 200 <= status < 300 else "failed"
            if await asyncio.to_thread(self._store.finish_line, batch["id"], line["line"], state, result, was="hosted"):
                await self._release(batch, line)
                if state == "done":
                    await self._hand_off.record(batch, line, result)

    async def _start_lines(self, batch: dict[str, Any], flying: list[int]) -> int:
        started = 0
        for line in await asyncio.to_thread(self._store.pending, batch["id"], skip=flying, limit=self._config.max_in_flight,
                                            worker=self.name, now=self._clock()):
            model = json.loads(line["body"]).get("model", "")
            if not self._headroom(model, self._per_model.get(model, 0)):
                break
            now = self._clock()
            if not await asyncio.to_thread(self._store.claim, batch["id"], line["line"], self.name, now + self._config.claim_s, now):
                continue  # another ingress replica's worker took it
            key = (batch["id"], line["line"])
            self._per_model[model] = self._per_model.get(model, 0) + 1
            self._flying[key] = asyncio.create_task(self._run(batch, line, model, key))
            started += 1
        return started

    async def _run(self, batch: dict[str, Any], line: dict[str, Any], model: str, key: tuple[str, int]) -> None:
        try:
            state, result = await self._run_line(batch, line)
            if await asyncio.to_thread(self._store.finish_line, batch["id"], line["line"], state, result):
                await self._release(batch, line)
        except Exception:  # the line stays pending and runs again on a later step
            logger.exception("batch %s line %d could not be run", batch["id"], line["line"])
        finally:
            self._per_model[model] -= 1
            self._flying.pop(key, None)

    async def _finalize(self, batch: dict[str, Any], final: str) -> None:
        """Write the output and error files from the lines' results, then the final status."""
        if final == "completed" and not await asyncio.to_thread(self._store.move, batch["id"], "finalizing",
                                                                only_from=("in_progress", "finalizing")):
            return
        results = await asyncio.to_thread(self._store.results, batch["id"])
        output_id, error_id = output_file_ids(batch["id"])
        ids = {}
        for file_id, state in ((output_id, "done"), (error_id, "failed")):
            chosen = [r for r in results if r["state"] == state]
            if chosen:
                await asyncio.to_thread(self._write_output, batch, file_id, chosen)
                ids["output_file_id" if state == "done" else "error_file_id"] = file_id
        origins = ("finalizing",) if final == "completed" else ("in_progress", "cancelling")
        unfinished = await asyncio.to_thread(self._store.unfinished_hold, batch["id"])
        if await asyncio.to_thread(self._store.move, batch["id"], final, only_from=origins, **ids):
            logger.info("batch %s %s: %d lines answered", batch["id"], final, len(results))
            if self._budget is not None and unfinished:  # lines it never ran give their holds back, once
                await self._budget.release(owner_of(batch), unfinished, batch["created_at"])

    async def _release(self, batch: dict[str, Any], line: dict[str, Any]) -> None:
        """A finished line gives its hold back (it was charged as a request of its own)."""
        if self._budget is not None and line.get("reserved_micro_usd"):
            try:
                await self._budget.release(owner_of(batch), int(line["reserved_micro_usd"]), batch["created_at"])
            except Exception:  # the counters' store is down: the hold stays until its period ends
                logger.warning("batch %s line %d: budget hold not given back", batch["id"], line["line"], exc_info=True)

    def _write_output(self, batch: dict[str, Any], file_id: str, results: list[dict[str, Any]]) -> None:
        data = b"".join(json.dumps({"id": f"batch_req_{batch['id']}_{r['line']}", "custom_id": r["custom_id"], **json.loads(r["result"])},
                                   separators=(",", ":")).encode() + b"\n" for r in results)
        self._files.write(file_id, data)
        self._store.add_file({"id": file_id, "key_id": batch["key_id"], "purpose": "batch_output", "filename": f"{file_id}.jsonl",
                                  "bytes": len(data), "created_at": int(self._clock())})

    async def aclose(self) -> None:
        if self._hand_off is not None:
            await self._hand_off.api.aclose()
        for task in list(self._flying.values()):
            task.cancel()
        await asyncio.gather(*self._flying.values(), return_exceptions=True)
        await asyncio.to_thread(self._store.release, self.name)
