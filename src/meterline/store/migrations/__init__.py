"""Alembic migrations of the meterline database, shipped in the package (see ``meterline.store.migrate``)."""
