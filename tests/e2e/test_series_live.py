"""Every series the k8s dashboards and alerts read from the ingress and from Ray
(k8s/observability/series.txt, sources ``ingress`` and ``ray``) is really scraped from a live
``spillover serve`` once it has had traffic: a cached and an uncached request, a stream, a routed request, and
local work priced (costs.local_interval_s is 5 s here). The labels the queries select on are
checked too."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import openai
import pytest

from contracts.deployments import APP_NAME
from spillover.config import DEFAULT_MODEL_NAME, default_config_dict
from tests.helpers import SpilloverServe, spillover_serving, wait_for
from tests.k8s.series import listed_from, scraped_names

pytestmark = pytest.mark.e2e
MODEL = DEFAULT_MODEL_NAME
PROMPT = [{"role": "user", "content": "Name a colour."}]


@pytest.fixture(scope="module")
def spillover(ray_cluster: dict[str, str], serve_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpilloverServe]:
    # A team budget, so the budget gauges are exported (the anonymous principal's team is "default").
    # A routed name over the default model and a second route on it, so the routing series are exported.
    config = {**default_config_dict(), "costs": {"budgets": [{"scope": "team", "name": "default", "daily_usd": 100}]},
              "routes": {"alias": {"local_model": MODEL}, "auto": {"routing": {"candidates": [MODEL, "alias"], "cascade": {}}}}}
    with spillover_serving(ray_cluster, serve_port, config, tmp_path_factory.mktemp("series-live")) as process:
        yield process


def test_every_listed_ingress_and_ray_series_is_scraped(spillover: SpilloverServe, ray_cluster: dict[str, str]) -> None:
    client = openai.OpenAI(base_url=spillover.base_url, api_key="unused", max_retries=0, timeout=120)
    for _ in range(2):  # a miss, then an exact hit
        client.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=8, temperature=0)
    list(client.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=8, stream=True))
    client.chat.completions.create(model="auto", messages=PROMPT, max_tokens=32, temperature=0.5)
    ingress = spillover.base_url.removesuffix("/v1") + "/metrics"
    ray = f"http://127.0.0.1:{ray_cluster['metrics_port']}/metrics"
    wanted = {ingress: listed_from("ingress"), ray: listed_from("ray")}
    assert all(wanted.values())
    missing: dict[str, set[str]] = {}

    def all_scraped() -> bool:
        for url, names in wanted.items():
            missing[url] = names - scraped_names(httpx.get(url, timeout=10).text)
        return not any(missing.values())

    try:  # Ray exports every 10 s; local work is priced 5 s + 10 s grace after it ends
        wait_for(all_scraped, timeout_s=90, what="every listed series")
    except TimeoutError:
        pytest.fail(f"never scraped: {missing}")
    ray_text = httpx.get(ray, timeout=10).text
    # The labels the dashboards and rules select on.
    assert re.search(rf'^ray_vllm_num_requests_waiting{{[^}}]*model_name="{MODEL}"', ray_text, re.MULTILINE)
    assert re.search(rf'^ray_serve_num_http_requests_total{{(?=[^}}]*application="{APP_NAME}")(?=[^}}]*status_code="200")',
                     ray_text, re.MULTILINE)
    ingress_text = httpx.get(ingress, timeout=10).text
    assert re.search(r'^spillover_cache_requests_total\{(?=[^}]*kind="exact")(?=[^}]*result="hit")', ingress_text, re.MULTILINE)
    assert re.search(r'^spillover_route_decisions_total\{(?=[^}]*route="auto")(?=[^}]*tier="(cheap|strong)")', ingress_text, re.MULTILINE)
    assert re.search(r'^spillover_budget_soft_limit\{(?=[^}]*team="default")(?=[^}]*period="day")', ingress_text, re.MULTILINE)
