from serving.hardware import cpu_dtype
from serving.llm_deployment import ENGINE_ENV, llm_config_for
from spillover.config import load_config


def test_cpu_model_becomes_a_ray_serve_llm_config() -> None:
    config = load_config(None, env={"SPILLOVER__MODELS__0__STREAM_BATCHING_INTERVAL_MS": "10"})
    llm = llm_config_for(config.models[0], config.ingress)
    kwargs = llm.engine_kwargs
    assert kwargs["dtype"] == cpu_dtype() and kwargs["enforce_eager"] is True and kwargs["max_model_len"] == 2048
    assert (kwargs["enable_auto_tool_choice"], kwargs["tool_call_parser"]) == (True, "hermes")
    env = llm.runtime_env["env_vars"]
    assert all(env[k] == v for k, v in ENGINE_ENV.items()), "engines never reach a model hub"
    assert llm.deployment_config["num_replicas"] == 1
    assert llm.deployment_config["graceful_shutdown_timeout_s"] == config.ingress.graceful_shutdown_timeout_s
    assert llm.experimental_configs["stream_batching_interval_ms"] == 10


def test_ray_default_batching_interval_unless_set() -> None:
    config = load_config(None, env={})
    assert "stream_batching_interval_ms" not in llm_config_for(config.models[0], config.ingress).experimental_configs
