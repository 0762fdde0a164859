"""Reading JSON request bodies over HTTP: bounded in size (413), parsed (400), validated against
a pydantic model (400 naming the ``param``), never a framework's 422.

Every HTTP surface uses it: the OpenAI endpoints, the admin API, the cache's purge.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from contracts.errors import InvalidRequestError, PayloadTooLargeError

__all__ = ["MAX_JSON_DEPTH", "loads_json", "parse_body", "read_json_body"]

#: Deepest nesting a body may have. Why: Python's parser recurses (a body of 100k ``[`` raised
#: RecursionError, a 500), and what it does accept deeply nested costs every later step that
#: walks it (validation, hashing, pickling to an engine). Tool schemas stay far below this.
MAX_JSON_DEPTH = 64

logger = logging.getLogger(__name__)


async def read_json_body(request: Request, max_bytes: int) -> dict[str, Any]:
    """Read at most ``max_bytes`` of body (413 past that) and parse a JSON object (400 if not)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLargeError(f"Request body of {declared} bytes exceeds the limit of {max_bytes} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLargeError(f"Request body exceeds the limit of {max_bytes} bytes.")
        chunks.append(chunk)
    body = loads_json(b"".join(chunks))
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object.")
    return body


def loads_json(raw: bytes | str) -> Any:
    """Parse JSON from a client (a body, a batch file's line): 400 for bad JSON, nesting past
    :data:`MAX_JSON_DEPTH` and lone surrogate escapes, never a RecursionError's 500."""
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequestError(f"We could not parse the JSON body of your request: {exc}.") from None
    except RecursionError:  # the parser recurses; ~1000 levels exhaust it
        raise _too_deep() from None
    _check_tree(value)
    return value


def _too_deep() -> InvalidRequestError:
    return InvalidRequestError(f"The JSON body is nested more than {MAX_JSON_DEPTH} levels deep.", code="json_too_deep")


def _check_tree(body: Any) -> None:
    """400 for nesting past :data:`MAX_JSON_DEPTH`, or for a lone surrogate escape: JSON allows
    ``"\\ud800"``, which parses to a str no UTF-8 encoder takes, so a hash, a tokenizer or a log
    line deep in the request would raise on it."""
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            try:
                item.encode()
            except UnicodeEncodeError:
                raise InvalidRequestError("The JSON body holds a lone UTF-16 surrogate escape (such as \\ud800): not valid Unicode.",
                                          code="invalid_unicode") from None
        elif isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise _too_deep()
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


def parse_body(model: type[BaseModel], body: dict[str, Any]) -> Any:
    """Validate ``body`` against a wire model; 400 with ``param`` if it fails."""
    try:
        parsed = model.model_validate(body)
    except ValidationError as exc:
        raise _invalid(exc) from None
    if parsed.model_extra and logger.isEnabledFor(logging.DEBUG):
        logger.debug("passing through fields the ingress does not read: %s", sorted(parsed.model_extra))
    return parsed


_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "list", "dict", "none"})


def _invalid(exc: ValidationError) -> InvalidRequestError:
    first = exc.errors()[0]
    # Union members show up in the location as type tags ("str", "list[int]"): not parameters.
    loc = [p for p in first["loc"] if isinstance(p, int) or (str(p).isidentifier() and p not in _TYPE_TAGS)]
    param = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or None
    if first["type"] == "missing":
        message = f"Missing required parameter: '{param}'."
    elif first["type"] == "too_short" and param in ("messages", "prompt", "input"):
        message = f"'{param}' must not be empty."
    else:
        message = f"Invalid value for '{param}': {first['msg']}."
    return InvalidRequestError(message, param=param, code="missing_required_parameter" if first["type"] == "missing" else "invalid_value")
