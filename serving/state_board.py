"""Where engine replicas post their state and the ingress reads it, twice a second.

A Serve handle reaches one replica per call, never all of them, so each engine replica pushes
its :class:`~contracts.engine_state.ReplicaState` to one named, detached Ray actor per
application (the board); every ingress replica polls the board and Serve's own replica counts
(replicas still starting), and folds both into one :class:`~contracts.engine_state.EngineState`
per model. Snapshots older than ``max_age_s`` count as gone: a replica that died stops
counting within two seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import ray

from contracts.background import run_every, stop_tasks
from contracts.engine_state import PUBLISH_PERIOD_S, EngineState, ReplicaInterval, ReplicaState, sum_replicas
from serving.replica_time import ReplicaTimeBook

__all__ = ["BoardDrainMarks", "BoardView", "EngineStateBoard", "EngineStateReader", "board_handle", "reset_board", "REPLICA_TIME_BUCKET_S"]

logger = logging.getLogger(__name__)

#: The board's replica-time buckets; the cost allocation's interval is a multiple of this.
REPLICA_TIME_BUCKET_S = 5.0
_NAMESPACE = "spillover"


@dataclass(frozen=True)
class BoardView:
    replicas: list[ReplicaState] = field(default_factory=list)
    #: Models being scaled to zero: the ingress sends them nothing new (autoscaler.actuator).
    draining: frozenset[str] = frozenset()


@ray.remote(num_cpus=0, max_restarts=-1)
class EngineStateBoard:
    """Latest snapshot per replica, the models draining, and replica time; in memory.

    After a restart the next posts rebuild the snapshots, but a drain mark is lost: draining
    replicas then look ready until they stop posting, and a request sent to them in that window
    waits for a replica until the dispatch stage's local start timeout fails it over. Replica
    time of intervals not yet priced is lost too: their local rows stay provisionally priced.
    """

    def __init__(self) -> None:
        self._replicas: dict[str, ReplicaState] = {}
        self._draining: set[str] = set()
        self._time = ReplicaTimeBook(REPLICA_TIME_BUCKET_S)

    def post(self, state: ReplicaState) -> None:
        self._replicas[state.replica_id] = state
        self._time.observe(state)

    def retire(self, replica_id: str) -> None:
        self._replicas.pop(replica_id, None)
        self._time.retire(replica_id)

    def replica_time(self, after: float, before: float) -> list[ReplicaInterval]:
        return self._time.closed(after, before)

    def set_draining(self, model: str, draining: bool) -> None:
        if draining:
            self._draining.add(model)
        else:
            self._draining.discard(model)

    def snapshot(self) -> BoardView:
        return BoardView(list(self._replicas.values()), frozenset(self._draining))


def _board_name(app_name: str) -> str:
    return f"engine-state-board:{app_name}"


def reset_board(app_name: str) -> None:
    """Remove ``app_name``'s board, so a new deployment starts with no replicas and nothing
    draining (the board is detached: it outlives the application that made it)."""
    try:
        ray.kill(ray.get_actor(_board_name(app_name), namespace=_NAMESPACE))
    except ValueError:  # no board yet
        pass


def board_handle(app_name: str) -> Any:
    """The board of ``app_name``, created by whichever side asks first."""
    return EngineStateBoard.options(  # type: ignore[attr-defined]  # ray.remote class
        name=_board_name(app_name),
        namespace=_NAMESPACE,
        get_if_exists=True,
        lifetime="detached",
    ).remote()


class BoardDrainMarks:
    """Marks a model draining on ``app_name``'s board (the autoscaler's drain before a scale to zero)."""

    def __init__(self, app_name: str) -> None:
        self._app_name = app_name

    async def set_draining(self, model: str, draining: bool) -> None:
        await board_handle(self._app_name).set_draining.remote(model, draining)


class EngineStateReader:
    """Keeps a fresh :class:`EngineState` per model inside an ingress replica.

    ``deployments`` maps public model names to the Serve deployment names of their engines.
    """

    def __init__(
        self,
        app_name: str,
        deployments: dict[str, str],
        *,
        period_s: float = PUBLISH_PERIOD_S,
        status_period_s: float = 2.0,
        max_age_s: float = 2.0,
    ) -> None:
        self._app_name = app_name
        self._deployments = deployments
        self._period_s = period_s
        self._status_period_s = status_period_s
        self._max_age_s = max_age_s
        self._view = BoardView()
        self._starting: dict[str, int] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        if not self._tasks:
            board = board_handle(self._app_name)
            self._tasks = [
                run_every(self._period_s, lambda: self._read_board(board), logger=logger, what="reading the engine-state board", first_at_once=True),
                run_every(self._status_period_s, self._read_serve_status, logger=logger, what="reading Serve's replica counts",
                          first_at_once=True),
            ]

    async def stop(self) -> None:
        await stop_tasks(*self._tasks)
        self._tasks = []

    def state(self, model: str) -> EngineState:
        return sum_replicas(
            model,
            self._view.replicas,
            replicas_starting=self._starting.get(model, 0),
            draining=model in self._view.draining,
            max_age_s=self._max_age_s,
        )

    def all_states(self) -> dict[str, EngineState]:
        return {model: self.state(model) for model in self._deployments}

    async def replica_time(self, after: float, before: float) -> list[ReplicaInterval]:
        """Up and busy time of every replica, per bucket from ``after`` that ended by ``before``."""
        return await board_handle(self._app_name).replica_time.remote(after, before)

    async def _read_board(self, board: Any) -> None:
        """The board's latest view; while it restarts the last view stands (a logged failure)."""
        self._view = await board.snapshot.remote()

    async def _read_serve_status(self) -> None:
        """Serve's count of starting replicas per model; while unavailable the last counts stand."""
        from ray import serve

        status = await asyncio.to_thread(serve.status)
        app = status.applications.get(self._app_name)
        if app is not None:
            self._starting = {
                model: app.deployments[name].replica_states.get("STARTING", 0)
                for model, name in self._deployments.items()
                if name in app.deployments
            }


def replica_state_now(replica_id: str, model: str, snapshot: Any | None, started_at: float = 0.0) -> ReplicaState:
    """A :class:`ReplicaState` stamped now, from an engine snapshot (zeros before the first step)."""
    now = time.time()
    if snapshot is None:
        return ReplicaState(replica_id=replica_id, model=model, observed_at=now, started_at=started_at)
    return ReplicaState(
        replica_id=replica_id,
        model=model,
        running=snapshot.running,
        waiting=snapshot.waiting,
        kv_cache_usage=snapshot.kv_cache_usage,
        prefill_tokens_per_s=snapshot.prefill_tokens_per_s,
        decode_tokens_per_s=snapshot.decode_tokens_per_s,
        observed_at=now,
        engine_idle_s=max(0.0, now - snapshot.observed_at),
        busy_s=snapshot.busy_s,
        started_at=started_at,
    )
