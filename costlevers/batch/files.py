"""File bytes on disk: one file per id under the configured directory, written whole or not at
all (a temporary name, then a rename), so a restart never finds half a file."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from stores.builtin_models import cache_dir

__all__ = ["FileBytes", "new_id"]


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


class FileBytes:
    def __init__(self, directory: str | None) -> None:
        self.directory = Path(directory).expanduser() if directory else cache_dir() / "files"

    def path(self, file_id: str) -> Path:
        if not file_id.replace("-", "").isalnum():
            raise ValueError(f"not a file id: {file_id!r}")
        return self.directory / file_id

    def write(self, file_id: str, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.path(file_id)
        tmp = target.with_name(f"{target.name}.{secrets.token_hex(4)}.part")  # two replicas finalizing at once do not collide
        with tmp.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(target)

    def read(self, file_id: str) -> bytes:
        return self.path(file_id).read_bytes()

    def delete(self, file_id: str) -> None:
        self.path(file_id).unlink(missing_ok=True)
