"""The overlays' ``postgres_dsn: "postgresql://"`` connects with libpq's PG* variables alone,
so the database password lives in the spillover-postgres Secret, never in the RayService."""

from __future__ import annotations

import base64

import pytest
import sqlalchemy as sa

from spillover.config import load_config
from stores.sql import Database, database_url
from tests.k8s.manifests import OVERLAYS, build, one


def test_every_overlay_takes_its_database_from_the_secret() -> None:
    for overlay in OVERLAYS:
        assert load_config(overlay / "spillover.yaml", env={}).stores.postgres_dsn == "postgresql://", overlay.name
        keys = set(one(build(overlay), "Secret", "spillover-postgres")["data"])
        assert keys == {"PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD", "PGSSLMODE"}


def test_an_empty_dsn_connects_and_migrates_from_pg_variables(monkeypatch: pytest.MonkeyPatch, postgres_dsn: str) -> None:
    url = sa.make_url(postgres_dsn)
    secret = one(build(OVERLAYS[0]), "Secret", "spillover-postgres")["data"]
    assert base64.b64decode(secret["PGHOST"]).decode() == "postgres"  # the in-cluster Service
    # The test database's settings, in the variables the Secret sets on the Ray pods.
    for name, value in {"PGHOST": url.host, "PGPORT": str(url.port or 5432), "PGDATABASE": url.database,
                        "PGUSER": url.username, "PGPASSWORD": url.password or "", "PGSSLMODE": "prefer"}.items():
        monkeypatch.setenv(name, value or "")
    database = Database(database_url("postgresql://", "/nonexistent/unused.db"))
    try:
        database.migrate()
        with database.engine.connect() as connection:
            assert connection.execute(sa.text("select current_database()")).scalar_one() == url.database
    finally:
        database.dispose()
