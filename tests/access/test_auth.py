from collections.abc import Iterator

import httpx
import openai
import pytest

from spillover.app import create_app
from tests.helpers import UvicornThread
from tests.serving.scripted_engines import ScriptedEngines, completion, scripted_config


@pytest.fixture
def base_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("SPILLOVER_API_KEYS", "sk-good, sk-other")
    config = scripted_config({"SPILLOVER__AUTH__ENABLED": "true"})
    engines = ScriptedEngines()
    engines.script = [completion("ok")]
    with UvicornThread(create_app(config, engines)) as server:
        yield server.base_url + "/v1"


def test_valid_key_is_served(base_url: str) -> None:
    client = openai.OpenAI(base_url=base_url, api_key="sk-other", max_retries=0)
    assert client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}]).choices


@pytest.mark.parametrize("key", ["sk-wrong", "sk-goo"])
def test_wrong_key_is_401_in_openai_shape(base_url: str, key: str) -> None:
    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 401
    assert info.value.body["type"] == "authentication_error"


@pytest.mark.parametrize("header", [None, "Basic sk-good", "Bearer"])
def test_missing_key_is_401(base_url: str, header: str | None) -> None:
    headers = {} if header is None else {"authorization": header}
    r = httpx.post(base_url + "/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "x"}]}, headers=headers)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "missing_api_key"
