"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from kiosk.registry import schema
from kiosk.registry.store import Base, make_engine


def test_migrations_match_the_models_and_are_current(db_url) -> None:
    engine = make_engine(db_url())
    assert not schema.is_current(engine)
    schema.upgrade(engine)
    assert schema.is_current(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    schema.upgrade(engine)  # applying again changes nothing
    engine.dispose()
