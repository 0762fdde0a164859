"""Local model deployments: Ray Serve LLM's ``LLMServer`` plus one duty, posting engine state.

spillover does not wrap vLLM again. ``LLMServer`` runs the engine and speaks OpenAI; this
subclass adds a loop that posts the engine's live numbers (from the vLLM stat-logger plugin in
:mod:`serving.vllm_stats_plugin`) to the application's engine-state board, and retires them when the
replica stops so the ingress stops counting it at once rather than after ``max_age_s``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from pydantic import ValidationError
from ray import serve
from ray.serve.llm import LLMConfig
from ray.serve.llm.deployment import LLMServer
from ray.serve.llm.openai_api_models import ChatCompletionRequest, CompletionRequest

from contracts.background import run_every, stop_tasks
from contracts.engine_state import PUBLISH_PERIOD_S
from serving.config import IngressConfig, ModelConfig
from serving.hardware import cpu_dtype
from serving.state_board import board_handle, replica_state_now
from serving.stream_batching import FirstChunkFirstBatcher
from serving.token_router import ROUTER_PATH
from stores.builtin_models import resolve_source

__all__ = ["SpilloverLLMServer", "llm_config_for", "ENGINE_ENV"]

logger = logging.getLogger(__name__)

#: Environment every engine process gets: never reach a model hub at run time.
ENGINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
#: CPU engines: KV cache in GiB, no reserved cores (a 2-core laptop has none to spare).
CPU_ENGINE_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}


class SpilloverLLMServer(LLMServer):
    """``LLMServer`` that posts its engine state to the board while it serves, and sends each
    stream's first chunk without waiting for the batching clock (serving.stream_batching)."""

    async def start(self) -> None:
        # The replica is paid for from here, engine loading included (costbook.local_cost).
        self._started_at = time.time()
        await super().start()
        context = serve.get_replica_context()
        self._replica_id = context.replica_id.unique_id
        self._board = board_handle(context.app_name)
        self._model_name = self._llm_config.model_id
        self._poster = run_every(PUBLISH_PERIOD_S, self._post_state, logger=logger, what="posting engine state", first_at_once=True)

    async def spillover_generate(self, api: str, body: dict[str, Any], request_id: str, prompt_tokens: int = 0) -> AsyncIterator[Any]:
        """Run a chat or text completion given as a plain mapping; yield plain items.

        The ingress sends dicts, not vLLM's request models: cheaper to pickle, and the ingress
        never imports the engine's types. Item shapes: serving.ray_engines. ``prompt_tokens``
        is the ingress's estimate, read by the request router (serving.token_router) before the
        call reaches a replica; the engine counts the real tokens itself.
        """
        model, method = _REQUEST_MODELS[api]
        try:
            request = model.model_validate({**body, "request_id": request_id})
        except ValidationError as exc:
            first = exc.errors()[0]
            param = ".".join(str(p) for p in first["loc"]) or None
            yield _error_item(400, f"Invalid value for '{param}': {first['msg']}.", param)
            return
        async for item in await getattr(self, method)(request):
            if isinstance(item, list):
                payloads = [i for i in item if isinstance(i, str)]
                if payloads:
                    yield payloads
                item = next((i for i in item if not isinstance(i, str)), None)
                if item is None:
                    continue
            yield _plain(item)

    def _batch_output_stream(self, generator: AsyncGenerator[Any, None]) -> AsyncGenerator[list[Any], None]:
        return FirstChunkFirstBatcher(generator, interval_ms=self._get_batch_interval_ms()).stream()

    async def _post_state(self) -> None:
        from serving import vllm_stats_plugin

        state = replica_state_now(self._replica_id, self._model_name, vllm_stats_plugin.latest(), self._started_at)
        # Fire and forget: a slow board must never slow the engine.
        self._board.post.remote(state)

    async def __del__(self) -> None:
        poster = getattr(self, "_poster", None)
        if poster is not None:
            await stop_tasks(poster)
            with contextlib.suppress(Exception):
                await self._board.retire.remote(self._replica_id)
        await super().__del__()  # shuts the engine down


_REQUEST_MODELS: dict[str, tuple[type, str]] = {
    "chat": (ChatCompletionRequest, "chat"),
    "completions": (CompletionRequest, "completions"),
}


def _error_item(status: int, message: str, param: str | None = None, type_: str = "invalid_request_error") -> dict[str, Any]:
    return {"status": status, "error": {"message": message, "type": type_, "param": param, "code": None}}


def _plain(item: Any) -> dict[str, Any]:
    """A non-stream engine output as plain data: a body dict or an error item."""
    error = getattr(item, "error", None)
    if error is not None and hasattr(error, "code"):
        return _error_item(int(error.code), error.message, getattr(error, "param", None), error.type)
    return item.model_dump()


def llm_config_for(model: ModelConfig, ingress: IngressConfig) -> LLMConfig:
    """Translate one model of spillover's config into Ray Serve LLM's ``LLMConfig``."""
    on_cpu = model.accelerator == "cpu"
    engine_kwargs: dict[str, Any] = {
        "dtype": cpu_dtype() if (on_cpu and model.dtype == "auto") else model.dtype,
        "max_model_len": model.max_model_len_tokens,
    }
    env = dict(ENGINE_ENV)
    extra: dict[str, Any] = {}
    if on_cpu:
        # torch.compile takes ~225 s to start on a small CPU; eager mode ~28 s.
        engine_kwargs["enforce_eager"] = True
        env |= CPU_ENGINE_ENV
        extra["accelerator_config"] = {"kind": "cpu"}
        extra["placement_group_config"] = {"bundles": [{"CPU": model.cpus_per_replica}]}
    else:
        engine_kwargs["tensor_parallel_size"] = model.gpus_per_replica
        if model.accelerator != "gpu":
            extra["accelerator_type"] = model.accelerator
    if model.tool_call_parser:
        engine_kwargs |= {"enable_auto_tool_choice": True, "tool_call_parser": model.tool_call_parser}
    engine_kwargs |= model.engine_kwargs
    env |= model.engine_env
    if model.stream_batching_interval_ms is not None:
        extra["experimental_configs"] = {"stream_batching_interval_ms": model.stream_batching_interval_ms}
    return LLMConfig(
        model_loading_config={"model_id": model.name, "model_source": resolve_source(model.source)},
        engine_kwargs=engine_kwargs,
        runtime_env={"env_vars": env},
        log_engine_metrics=True,
        deployment_config={
            # The autoscaler (autoscaler/) owns replica counts; Serve's own autoscaling stays
            # off so two controllers never fight.
            "num_replicas": model.replicas.at_deploy,
            "max_ongoing_requests": model.max_ongoing_requests,
            "graceful_shutdown_timeout_s": ingress.graceful_shutdown_timeout_s,
            "request_router_config": {"request_router_class": ROUTER_PATH},
        },
        **extra,
    )
