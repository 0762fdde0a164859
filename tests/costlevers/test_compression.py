"""Compression's parts: passages cut verbatim with structure whole, scores that follow a bridge,
the protected parts of a chat request, and the budget arithmetic (floor, minimum size)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from contracts.compression import CompressOutcome
from contracts.errors import ConfigError
from costlevers.compression.chat import append_instruction, compressible_pieces
from costlevers.compression.config import CompressionConfig
from costlevers.compression.scoring import ScoreWeights, score_units
from costlevers.compression.segments import join_kept, split_passages
from costlevers.compression.select import extract
from costlevers.compression.stage import CompressPolicy, compress_messages
from spillover.config import parse_config
from tests.serving.scripted_engines import scripted_config

VAN_HOOK = (
    "Title: Port Blair\nPort Blair is the capital of the Andaman and Nicobar Islands. It lies in the Bay of Bengal.\n\n"
    "Title: Mountrail County Courthouse\nThe Mountrail County Courthouse in Stanley, North Dakota was built in 1914. "
    "It was designed by Buechner & Orth.\n\n"
    "Title: Van Hook Township, Mountrail County, North Dakota\nVan Hook Township is a township in Mountrail County in the U.S. "
    "state of North Dakota. Its population was 42 in 2000.\n\n"
    "Title: Lake Sakakawea\nLake Sakakawea is a reservoir in the Missouri River basin. It is the largest lake in the state.\n\n"
    "Title: Bismarck\nBismarck is a state capital, home of the legislature.\n\n"
    "Title: Williston\nWilliston is a city on the Missouri River. It grew fast during the oil boom of the 2010s."
)
QUESTION = "What is the seat of the county where Van Hook Township is located?"


def test_units_are_verbatim_sentences_under_their_passage_titles() -> None:
    passages = split_passages(VAN_HOOK)
    assert [p.title for p in passages][:2] == ["Title: Port Blair", "Title: Mountrail County Courthouse"]
    assert [u.text for u in passages[1].units] == ["The Mountrail County Courthouse in Stanley, North Dakota was built in 1914.",
                                                   "It was designed by Buechner & Orth."]
    every = {(p, u) for p, passage in enumerate(passages) for u in range(len(passage.units))}
    assert join_kept(passages, every) == VAN_HOOK


def test_code_json_and_tables_are_kept_or_dropped_whole_and_list_items_stay_items() -> None:
    text = ("Notes\n```python\ndef f():\n\n    return 1\n```\n\n" + json.dumps({"a": [1, 2], "b": "c. D"}) +
            "\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n- first item. More.\n- second item\n  continued")
    passages = split_passages(text)
    code, data, table, items = passages
    assert code.title == "Notes" and code.units[0].atomic and "\n\n    return 1" in code.units[0].text
    assert data.units[0].atomic and json.loads(data.units[0].text) == {"a": [1, 2], "b": "c. D"}
    assert table.units[0].atomic
    assert [u.text for u in items.units] == ["- first item. More.", "- second item\n  continued"]
    assert join_kept(passages, {(3, 1)}) == "- second item\n  continued"


def test_the_feedback_round_follows_the_bridge_to_the_answer_passage() -> None:
    passages = split_passages(VAN_HOOK)
    without = [s.max() for s in score_units(passages, QUESTION, ScoreWeights(feedback=0.0, position=0.0))]
    with_feedback = [s.max() for s in score_units(passages, QUESTION, ScoreWeights(position=0.0))]
    courthouse, township = 1, 2

    def lead_over_distractors(scores: list[float]) -> float:
        return scores[courthouse] - max(s for i, s in enumerate(scores) if i not in (courthouse, township))

    assert lead_over_distractors(with_feedback) > lead_over_distractors(without) + 0.2
    assert sorted(range(6), key=lambda i: -with_feedback[i])[:2] == [township, courthouse]


def chars4(texts: list[str]) -> list[int]:
    return [-(-len(t) // 4) for t in texts]


def test_extract_keeps_the_evidence_within_the_budget_in_original_order() -> None:
    total = chars4([VAN_HOOK])[0]
    cut = extract(VAN_HOOK, QUESTION, total // 2, chars4, total)
    assert cut.kept_tokens <= total // 2 + 2
    assert "Van Hook Township is a township in Mountrail County" in cut.text
    assert "The Mountrail County Courthouse in Stanley" in cut.text
    assert cut.text.index("Courthouse") < cut.text.index("Van Hook Township is")
    assert extract(VAN_HOOK, QUESTION, total * 2, chars4, total).text == VAN_HOOK


def rag(system: str = "You answer from the documents.") -> list[dict[str, Any]]:
    return [{"role": "system", "content": system},
            {"role": "user", "content": "old question about lakes"}, {"role": "assistant", "content": "old answer about lakes"},
            {"role": "user", "content": VAN_HOOK + "\n\nQuestion: " + QUESTION}]


def test_system_recent_turns_and_the_question_are_protected() -> None:
    pieces, question = compressible_pieces(rag(), keep_last_turns=2)
    assert question == "Question: " + QUESTION
    assert [(p.message, p.tail) for p in pieces] == [(3, "Question: " + QUESTION)]
    pieces, _ = compressible_pieces(rag(), keep_last_turns=0)
    assert [p.message for p in pieces] == [1, 2, 3]
    single = [{"role": "user", "content": "One block, no context to cut."}]
    assert compressible_pieces(single, 2)[0] == []
    tool_call = [{"role": "assistant", "content": None, "tool_calls": [{"id": "t"}]}, {"role": "user", "content": "a\n\nb"}]
    assert [p.message for p in compressible_pieces(tool_call, 0)[0]] == [1]


def test_a_compressed_request_keeps_its_prefix_and_question_verbatim() -> None:
    messages = rag()
    original = sum(chars4([m["content"] for m in messages]))
    cut = compress_messages(messages, original, CompressPolicy(CompressionConfig(ratio=2, min_tokens=10)))
    assert cut.outcome is CompressOutcome.COMPRESSED
    assert cut.messages[:3] == messages[:3]
    content = cut.messages[3]["content"]
    assert content.endswith("\n\nQuestion: " + QUESTION)
    assert len(content) < len(messages[3]["content"]) * 0.75
    assert "Van Hook Township is a township in Mountrail County" in content


def test_protected_parts_that_leave_no_room_stop_at_the_floor_and_say_so() -> None:
    messages = rag(system="You answer from the documents. " * 200)
    original = sum(chars4([m["content"] for m in messages]))
    config = CompressionConfig(ratio=3, min_tokens=10, max_ratio=2)
    cut = compress_messages(messages, original, CompressPolicy(config))
    assert cut.outcome is CompressOutcome.FLOOR
    kept = chars4([cut.messages[3]["content"]])[0]
    assert chars4([VAN_HOOK])[0] // 2 - 5 <= kept <= chars4([VAN_HOOK])[0] * 0.6


def test_short_prompts_pass_untouched() -> None:
    messages = rag()
    original = sum(chars4([m["content"] for m in messages]))
    cut = compress_messages(messages, original, CompressPolicy(CompressionConfig(ratio=3, min_tokens=original)))
    assert cut.outcome is CompressOutcome.UNTOUCHED and cut.messages is messages


def test_the_concision_instruction_goes_after_the_stable_prefix() -> None:
    out = append_instruction(rag(), "Be brief.")
    assert out[:3] == rag()[:3] and out[3]["content"].endswith("\n\nBe brief.")
    parts = append_instruction([{"role": "user", "content": [{"type": "text", "text": "q"}]}], "Be brief.")
    assert parts[0]["content"][-1] == {"type": "text", "text": "Be brief."}


@pytest.mark.parametrize(("block", "field"), [
    ({"ratio": 1}, "routes.m.compression.ratio"),
    ({"ratio": 3, "max_prompt_tokens": 100}, "routes.m.compression"),
    ({}, "routes.m.compression"),
    ({"ratio": 3, "keep_turns": 1}, "routes.m.compression.keep_turns"),
])
def test_a_malformed_compression_block_fails_at_start_naming_the_field(block: dict[str, Any], field: str) -> None:
    raw = scripted_config().model_dump(mode="json")
    raw["routes"] = {"m": {"compression": block}}
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        parse_config(raw)
