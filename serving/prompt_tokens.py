"""Prompt tokens counted with the model's own tokenizer, as its engine will count them.

The spill-over decision and admission read a request's prompt length before any engine has seen
it. chars/4 (:func:`contracts.tokens.estimate_prompt_tokens`) misses the chat template and
dense text: on the Arena-Hard questions it counts SmolLM2's chat prompts 40% short at the median
(``bench/prompt_tokens.py``). A route whose local model has its tokenizer on this machine counts
exactly instead: a chat body through the model's chat template with the generation prompt (what
vLLM renders and tokenises, special tokens from the template only), a completion's text with the
tokenizer's own special tokens, token arrays as themselves.

Tokenizers load from local files only (never the hub), once per source and process, when the
ingress is assembled (a few tenths of a second from a folder): a replica takes no traffic before
its tokenizer is ready, and no request stalls the event loop while one loads. A builtin model's
tokenizer comes from its converted folder, which ``spillover serve`` writes before the ingress
starts. A source whose tokenizer does not load (a hub id or remote mirror, a builtin not yet
converted, missing files) counts chars/4, logged once; so does a request whose chat template
fails, and a prompt over :data:`MAX_EXACT_CHARS`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from contracts.tokens import estimate_prompt_tokens, prompt_chars
from stores.builtin_models import tokenizer_files

__all__ = ["MAX_EXACT_CHARS", "PromptTokenCounter", "TokenizerCounter", "prompt_token_counter"]

logger = logging.getLogger(__name__)

#: Counts a request body's prompt tokens.
PromptTokenCounter = Callable[[Mapping[str, Any]], int]

#: Prompts longer than this count chars/4. Counting runs on the event loop at about 0.4 ms per
#: thousand characters (a 2k-token chat prompt: ~3 ms on a 2-core laptop), so this bounds one
#: request's stall to ~25 ms; at ~16k tokens the decision is rarely near its boundary.
MAX_EXACT_CHARS = 64_000


class TokenizerCounter:
    """A Hugging Face tokenizer as a :data:`PromptTokenCounter`."""

    def __init__(self, tokenizer: Any, name: str = "") -> None:
        self._tokenizer = tokenizer
        self._name = name
        self._template_failed = False

    @classmethod
    def load(cls, folder: str | Path, gguf_file: str | None = None) -> TokenizerCounter:
        """Load from a local folder (or a GGUF file in it); never downloads."""
        from transformers import AutoTokenizer

        kwargs = {"gguf_file": gguf_file} if gguf_file else {}
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, **kwargs)
        return cls(tokenizer, name=str(Path(folder) / gguf_file) if gguf_file else str(folder))

    def __call__(self, body: Mapping[str, Any]) -> int:
        if prompt_chars(body) > MAX_EXACT_CHARS:
            return estimate_prompt_tokens(body)
        messages = body.get("messages")
        if isinstance(messages, list):
            return self._chat(body, messages)
        prompt = body.get("prompt")
        prompts = prompt if isinstance(prompt, list) and prompt and not isinstance(prompt[0], int) else [prompt]
        return max(1, sum(self._prompt(p) for p in prompts))

    def count_texts(self, texts: list[str]) -> list[int]:
        """Each text's token count, without special tokens (pieces of a prompt: compression's units)."""
        if not texts:
            return []
        return [len(ids) for ids in self._tokenizer(texts, add_special_tokens=False).input_ids]

    def _chat(self, body: Mapping[str, Any], messages: list[Any]) -> int:
        try:
            ids = self._tokenizer.apply_chat_template(
                [_plain_message(m) for m in messages], tools=body.get("tools") or None, tokenize=True, return_dict=False,
                add_generation_prompt=body.get("add_generation_prompt", True) is not False,
            )
        except Exception as exc:  # noqa: BLE001 - any template error: this request counts chars/4
            if not self._template_failed:
                self._template_failed = True
                logger.warning("chat template of %s failed (%s: %s); such requests count chars/4", self._name, type(exc).__name__, exc)
            return estimate_prompt_tokens(body)
        return max(1, len(ids["input_ids"] if isinstance(ids, Mapping) else ids))

    def _prompt(self, prompt: Any) -> int:
        if isinstance(prompt, str):
            return len(self._tokenizer(prompt).input_ids)
        if isinstance(prompt, list):
            return len(prompt)
        return 0


def _plain_message(message: Any) -> Any:
    """A message as vLLM hands it to the template: text parts joined by newlines, no content as ''."""
    if not isinstance(message, Mapping):
        return message
    content = message.get("content")
    if isinstance(content, str):
        return message
    if isinstance(content, list):
        text = "\n".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping) and "text" in p)
    else:
        text = ""
    return {**message, "content": text}


@functools.cache
def prompt_token_counter(source: str, *, gguf: bool = False) -> PromptTokenCounter:
    """The counter for a model ``source`` (as configured): its tokenizer where it loads from
    local files (:func:`stores.builtin_models.tokenizer_files`; ``gguf``: a builtin model not
    yet converted reads its GGUF, seconds), else chars/4, logged once per source and process."""
    try:
        folder, gguf_file = tokenizer_files(source, gguf=gguf)
        return TokenizerCounter.load(folder, gguf_file)
    except Exception as exc:  # noqa: BLE001 - no tokenizer is never fatal: chars/4 still decides
        logger.warning("no local tokenizer for %s (%s: %s); its prompts count chars/4", source, type(exc).__name__, exc)
        return estimate_prompt_tokens
