"""A hosted provider's configuration: where, which key, which names, how long to wait."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ProviderConfig"]


class ProviderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="The destination name in headers, metrics and the ledger.")
    kind: Literal["openai", "anthropic"] = Field(
        "openai", description="Wire format: `openai` (OpenAI, Together, Fireworks, vLLM) or `anthropic`."
    )
    base_url: str = Field(description="API root, e.g. `https://api.openai.com/v1`.")
    api_key_env: str | None = Field(None, description="Environment variable holding the key.")
    api_key_file: str | None = Field(None, description="File holding the key (a mounted Secret).")
    models: dict[str, str] = Field(default_factory=dict, description="Public model name -> provider's model name.")
    connect_timeout_s: Annotated[float, Field(gt=0)] = 3.0
    first_byte_timeout_s: Annotated[float, Field(gt=0)] = Field(
        30.0, description="A stream's longest wait for its first byte, and for each chunk after it."
    )
    total_timeout_s: Annotated[float, Field(gt=0)] = Field(
        600.0, description="A whole call's bound; a non-stream answer's wait for its body."
    )
    anthropic_version: str = "2023-06-01"
    auth_header: Literal["default", "bearer", "x-api-key"] = Field(
        "default",
        description="How the key travels: `default` is `Authorization: Bearer` for `openai` and `x-api-key` "
        "for `anthropic`; Anthropic-compatible servers such as vLLM's want `bearer`.",
    )

    def api_key(self) -> str | None:
        """Read the key at call time (rotation without restart); never stored in config dumps."""
        if self.api_key_file:
            return Path(self.api_key_file).read_text().strip()
        if self.api_key_env:
            return os.environ.get(self.api_key_env)
        return None

    def auth_headers(self) -> dict[str, str]:
        key = self.api_key()
        if not key:
            return {}
        scheme = self.auth_header
        if scheme == "default":
            scheme = "x-api-key" if self.kind == "anthropic" else "bearer"
        return {"x-api-key": key} if scheme == "x-api-key" else {"authorization": f"Bearer {key}"}

    def upstream_model(self, public_model: str) -> str:
        return self.models.get(public_model, public_model)
