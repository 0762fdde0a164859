"""The one place errors become HTTP responses: OpenAI's envelope for every failure, ours
(``SpilloverError``), the framework's (404, 405) and anything unexpected (500 without details,
which could carry prompt text)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from contracts.errors import SpilloverError, error_body
from spillover.api.openai_routes import REQUEST_ID_HEADER, request_id_of

__all__ = ["install_error_handlers"]

logger = logging.getLogger(__name__)


def install_error_handlers(app: FastAPI, echo_request_id: bool) -> None:
    def respond(request: Request, status: int, body: dict, headers: dict[str, str] | None = None) -> JSONResponse:
        headers = dict(headers or {})
        if echo_request_id:
            headers[REQUEST_ID_HEADER] = getattr(request.state, "request_id", None) or request_id_of(request)
        return JSONResponse(body, status_code=status, headers=headers)

    @app.exception_handler(SpilloverError)
    async def spillover_error(request: Request, exc: SpilloverError) -> JSONResponse:
        log = logger.warning if exc.status_code >= 500 else logger.info
        log("request refused: %s %s", exc.status_code, exc.code, extra={"request_id": getattr(request.state, "request_id", None)})
        return respond(request, exc.status_code, exc.body(), exc.headers())

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            body = error_body(f"Unknown request URL: {request.method} {request.url.path}.", "invalid_request_error", None, "unknown_url")
        elif exc.status_code == 405:
            body = error_body(f"Method {request.method} is not allowed for {request.url.path}.", "invalid_request_error", None, "method_not_allowed")
        else:
            body = error_body(str(exc.detail), "invalid_request_error" if exc.status_code < 500 else "api_error")
        return respond(request, exc.status_code, body, dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # No stack trace or message to the client: both can carry prompt text.
        logger.error("unexpected error: %s", type(exc).__name__, extra={"request_id": getattr(request.state, "request_id", None)})
        return respond(request, 500, error_body("The server had an error while processing your request.", "api_error", None, "internal_error"))
