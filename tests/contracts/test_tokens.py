"""The tokenizer-free prompt estimate reads bodies as sent, chat and text completions alike."""

from __future__ import annotations

from contracts.tokens import estimate_prompt_tokens, prompt_chars


def test_chat_messages_count_their_text_and_a_role_overhead() -> None:
    body = {"messages": [{"role": "system", "content": "x" * 84}, {"role": "user", "content": [{"type": "text", "text": "y" * 40}]}]}
    assert prompt_chars(body) == 84 + 16 + 40 + 16
    assert estimate_prompt_tokens(body) == (84 + 16 + 40 + 16) // 4


def test_completion_prompts_text_or_token_arrays() -> None:
    assert prompt_chars({"prompt": "abcd" * 10}) == 40
    assert estimate_prompt_tokens({"prompt": [[1, 2, 3], [4, 5]]}) == 5, "token arrays count as themselves"
    assert estimate_prompt_tokens({"messages": []}) == 1, "never zero"
