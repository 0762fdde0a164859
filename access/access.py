"""Access as the ingress runs it: the key cache (reloaded in the background), static keys from
the environment, the one :class:`Authenticate` stage, and the admin key.

Built from the ``auth`` section and the shared database; the admit stage (costbook) reads a
key's own limits through :attr:`Access.keys`.
"""

from __future__ import annotations

import os
from collections import ChainMap
from collections.abc import Mapping

from access.authenticate import Authenticate, static_keys_from_env
from access.config import AuthConfig
from access.keys import KeyCache, KeyStore, load_key_secret
from contracts.context import Principal
from stores.sql import Database

__all__ = ["Access"]


class Access:
    def __init__(self, auth: AuthConfig, keys: KeyCache, *, admin_key: str | None) -> None:
        self.keys = keys
        self.admin_key = admin_key
        static = static_keys_from_env(auth.keys_env, digest_of=keys.store.digest)
        # Keys from the store first, then static keys from the environment.
        principals: Mapping[str, Principal] = ChainMap(keys, static)  # type: ignore[arg-type]  # a Mapping is enough for lookups
        self.authenticate = Authenticate(principals, enabled=auth.enabled, digest_of=keys.store.digest)

    @classmethod
    def from_config(cls, auth: AuthConfig, database: Database) -> Access:
        keys = KeyCache(KeyStore(database.engine, load_key_secret(auth.secret_env, auth.secret_file)), refresh_s=auth.refresh_s)
        return cls(auth, keys, admin_key=os.environ.get(auth.admin_key_env) or None)

    def start(self) -> None:
        self.keys.start()

    async def aclose(self) -> None:
        await self.keys.aclose()
