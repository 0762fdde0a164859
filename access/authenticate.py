"""Who is calling: ``Authorization: Bearer <key>`` to a principal, or anonymous when auth is off.

Keys are compared as HMAC-SHA-256 digests (fast, and the raw key never sits in a lookup
table). This stage takes any mapping of digests to principals and the digest function that
made them: the key store's (access.keys, keys created by an admin) chained with static keys
from the environment.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable, Mapping

from contracts.context import ANONYMOUS, Principal, RequestContext
from contracts.errors import AuthenticationError
from contracts.pipeline import Stage

__all__ = ["Authenticate", "key_digest", "static_keys_from_env"]

# Static keys need a stable digest across replicas; a store with its own secret replaces this.
_STATIC_PEPPER = b"spillover-static-keys"


def key_digest(key: str, pepper: bytes = _STATIC_PEPPER) -> str:
    return hmac.new(pepper, key.encode(), hashlib.sha256).hexdigest()


def static_keys_from_env(variable: str, env: Mapping[str, str] | None = None,
                         digest_of: Callable[[str], str] = key_digest) -> dict[str, Principal]:
    """Comma-separated keys in ``variable``; each becomes its own principal in team ``default``."""
    env = os.environ if env is None else env
    keys = [k.strip() for k in env.get(variable, "").split(",") if k.strip()]
    principals = {}
    for key in keys:
        digest = digest_of(key)
        key_id = f"key-{digest[:12]}"
        principals[digest] = Principal(key_id=key_id, user=key_id, team="default")
    return principals


class Authenticate(Stage):
    name = "authenticate"

    def __init__(self, principals: Mapping[str, Principal], *, enabled: bool, digest_of: Callable[[str], str] = key_digest) -> None:
        self._principals = principals
        self._enabled = enabled
        self._digest_of = digest_of

    async def process(self, ctx: RequestContext) -> None:
        feature = ctx.headers.get("x-feature") or _metadata_feature(ctx)
        if not self._enabled:
            ctx.principal = Principal(ANONYMOUS.key_id, ANONYMOUS.user, ANONYMOUS.team, feature)
            return
        header = ctx.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise AuthenticationError(
                "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.",
                code="missing_api_key",
            )
        principal = self._principals.get(self._digest_of(key.strip()))
        if principal is None:
            raise AuthenticationError("Incorrect API key provided.")
        ctx.principal = Principal(principal.key_id, principal.user, principal.team, feature)


def _metadata_feature(ctx: RequestContext) -> str | None:
    metadata = ctx.body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("feature"), str):
        return metadata["feature"]
    return None
