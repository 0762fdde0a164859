"""Who may call: API keys, their HMAC secret, the admin key, and how often keys reload."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["AuthConfig"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AuthConfig(_Strict):
    enabled: bool = Field(False, description="Require `Authorization: Bearer <key>`.")
    keys_env: str = Field(
        "SPILLOVER_API_KEYS",
        description="Environment variable holding comma-separated static keys, beside those `spillover keys create` makes.",
    )
    secret_env: str = Field("SPILLOVER_KEY_SECRET", description="Environment variable holding the keys' HMAC secret.")
    secret_file: str = Field(
        "~/.cache/spillover/key-secret", description="The HMAC secret when the variable is unset; made once (mode 0600)."
    )
    admin_key_env: str = Field("SPILLOVER_ADMIN_KEY", description="Environment variable holding the admin API's key.")
    refresh_s: Annotated[float, Field(gt=0, le=5)] = Field(
        1.0, description="How often each ingress replica reloads the keys: a revocation's longest delay."
    )
