"""Alembic's entry: migrations run on the connection stores.sql hands over."""

from alembic import context

from stores.sql_schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
