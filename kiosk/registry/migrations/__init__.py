"""Alembic migrations of the registry database (applied by `kiosk registry upgrade`)."""
