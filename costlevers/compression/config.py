"""A route's ``compression`` block: the target (a ratio or a prompt-token budget), what is never
cut, and the optional concision instruction.

Off unless a route has the block. Unknown keys, a ratio of 1 or less, both targets at once or a
block that asks for nothing fail at start with one line naming the field
(:func:`spillover.config.parse_config`).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["DEFAULT_CONCISE_INSTRUCTION", "CompressionConfig"]

DEFAULT_CONCISE_INSTRUCTION = "Answer as briefly as the question allows: no preamble, no restating the question."


class CompressionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ratio: Annotated[float, Field(gt=1)] | None = Field(
        None, description="Cut the prompt to 1/ratio of its tokens (3: a third), taking only from compressible parts."
    )
    max_prompt_tokens: Annotated[int, Field(gt=0)] | None = Field(
        None, description="Or: cut the prompt to at most this many tokens (the chosen model's tokenizer where loaded)."
    )
    min_tokens: Annotated[int, Field(ge=0)] = Field(
        300, description="Compressible text shorter than this (tokens) passes untouched: short prompts barely compress."
    )
    keep_last_turns: Annotated[int, Field(ge=0)] = Field(
        2, description="Messages before the final user message that are never cut (the conversation's recent turns)."
    )
    max_ratio: Annotated[float, Field(gt=1)] = Field(
        10.0, description="The most the compressible part is ever cut by: where protected parts (system prompt, question, "
        "recent turns, tool definitions) leave too little room for the target, it stops here and says so (outcome `floor`)."
    )
    concise: bool = Field(False, description="Add a concision instruction after the final user message (after the stable prefix).")
    concise_instruction: str = Field(DEFAULT_CONCISE_INSTRUCTION, min_length=1, description="The instruction `concise` adds.")

    @model_validator(mode="after")
    def _one_target(self) -> CompressionConfig:
        if self.ratio is not None and self.max_prompt_tokens is not None:
            raise ValueError("give `ratio` or `max_prompt_tokens`, not both")
        if self.ratio is None and self.max_prompt_tokens is None and not self.concise:
            raise ValueError("a compression block needs `ratio`, `max_prompt_tokens` or `concise: true`")
        return self

    @property
    def target_text(self) -> str:
        if self.ratio is not None:
            return f"ratio {self.ratio:g}"
        if self.max_prompt_tokens is not None:
            return f"max {self.max_prompt_tokens}"
        return "none"
