"""The request router inside real Ray Serve: short prompts go around a replica busy with a long one.

One replica holds a long prompt, the other three short ones; a fourth short request comes. Serve's
count-based router sends it to the shorter queue, behind the long prompt; the token router sends
it to the replica with fewer prompt tokens waiting. Once the long prompt has started answering
(the ingress marks it on the process's book), a fifth goes to its replica: only the short ones
still wait to start.
A throwaway Ray instance in a subprocess, a plain deployment standing in for the engine: this
checks routing, which does not need a model.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.e2e

SCRIPT = textwrap.dedent('''
    import asyncio, json, ray
    from ray import serve
    from serving.token_router import IN_FLIGHT, PROMPT_TOKENS_KWARG, ROUTER_PATH

    @serve.deployment(num_replicas=2, max_ongoing_requests=8, ray_actor_options={"num_cpus": 0},
                      request_router_config={"request_router_class": ROUTER_PATH})
    class Engine:
        async def spillover_generate(self, api, body, request_id, prompt_tokens=0):
            await asyncio.sleep(body["hold_s"])
            return serve.get_replica_context().replica_id.unique_id

    async def main():
        handle = serve.run(Engine.bind(), name="token-router-check", route_prefix=None)
        call = handle.spillover_generate
        def send(name, hold_s, tokens):
            return call.remote("chat", {"hold_s": hold_s}, request_id=name, **{PROMPT_TOKENS_KWARG: tokens})

        await send("warm", 0.01, 1)
        long = send("long", 6, 10000)
        await asyncio.sleep(0.5)
        shorts = [send(f"s{i}", 5, 100) for i in range(3)]
        await asyncio.sleep(0.5)
        probe = await send("probe", 0.01, 100)
        IN_FLIGHT.started("long")
        after_start = await send("after_start", 0.01, 100)
        placed = {"long": await long, "short": [await s for s in shorts], "probe": probe, "after_start": after_start}
        print("PLACED", json.dumps(placed), flush=True)

    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"location": "NoServer"})
    asyncio.run(main())
    serve.shutdown()
    ray.shutdown()
''')


def test_short_prompts_go_around_the_replica_busy_with_a_long_one() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=180,
                            env={"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-3000:]
    placed = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("PLACED "))[7:])
    assert placed["long"] not in [*placed["short"], placed["probe"]], placed
    assert placed["after_start"] == placed["long"], placed
