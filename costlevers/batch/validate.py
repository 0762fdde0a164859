"""An input file's lines, checked once when the batch is created, as OpenAI does: a line that is
not a JSON object, lacks ``custom_id`` or ``body``, repeats a ``custom_id``, names another
``url`` than the batch's endpoint or a model nobody serves, and a file over the line limit, each
fail the batch with an ``errors`` entry naming the line (1-based)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from contracts.errors import InvalidRequestError
from webio.bodies import loads_json

__all__ = ["ENDPOINTS", "InputLine", "LineError", "parse_input"]

#: The endpoints a batch may name, and the API each one is.
ENDPOINTS = {"/v1/chat/completions": "chat", "/v1/completions": "completions", "/v1/embeddings": "embeddings"}


@dataclass(frozen=True)
class InputLine:
    line: int
    custom_id: str
    body: dict[str, Any]


@dataclass(frozen=True)
class LineError:
    code: str
    message: str
    line: int | None = None
    param: str | None = None

    def to_openai(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "param": self.param, "line": self.line}


def parse_input(data: bytes, *, endpoint: str, models: Collection[str], max_lines: int) -> tuple[list[InputLine], list[LineError]]:
    """The file's lines, or the errors that fail the batch (every bad line, up to 100 of them)."""
    lines: list[InputLine] = []
    errors: list[LineError] = []
    seen: set[str] = set()
    raw_lines = [raw for raw in data.splitlines() if raw.strip()]
    if len(raw_lines) > max_lines:
        return [], [LineError("too_many_lines", f"The file has {len(raw_lines)} lines; a batch may have at most {max_lines}.")]
    if not raw_lines:
        return [], [LineError("empty_file", "The input file has no lines.")]
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        problem = _line_problem(raw, endpoint, models, seen)
        if isinstance(problem, LineError):
            errors.append(LineError(problem.code, problem.message, number, problem.param))
            if len(errors) >= 100:
                break
        else:
            lines.append(InputLine(number, problem["custom_id"], problem["body"]))
    return lines, errors


def _line_problem(raw: bytes, endpoint: str, models: Collection[str], seen: set[str]) -> dict[str, Any] | LineError:
    try:
        item = loads_json(raw)
    except InvalidRequestError as exc:  # not JSON, nested too deep, or not valid Unicode
        return LineError("invalid_json_line", f"This line is not parseable as valid JSON ({exc.code or 'invalid_json'}).")
    if not isinstance(item, dict):
        return LineError("invalid_json_line", "This line is not a JSON object.")
    custom_id, body, url = item.get("custom_id"), item.get("body"), item.get("url")
    if not isinstance(custom_id, str) or not custom_id:
        return LineError("missing_required_parameter", "The line has no custom_id.", param="custom_id")
    if custom_id in seen:
        return LineError("duplicate_custom_id", f"The custom_id {custom_id!r} is used on an earlier line.", param="custom_id")
    seen.add(custom_id)
    if (item.get("method") or "POST") != "POST":
        return LineError("invalid_method", "Only POST is supported.", param="method")
    if url != endpoint:
        return LineError("mismatched_endpoint", f"The line's url {url!r} is not the batch's endpoint {endpoint!r}.", param="url")
    if not isinstance(body, dict):
        return LineError("missing_required_parameter", "The line has no body object.", param="body")
    if body.get("model") not in models:
        return LineError("model_not_found", f"The model {body.get('model')!r} does not exist.", param="body.model")
    if body.get("stream"):
        return LineError("invalid_value", "Batch lines cannot stream.", param="body.stream")
    return {"custom_id": custom_id, "body": body}
