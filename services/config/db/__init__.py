"""The config service's data: SQLAlchemy 2 async models and Alembic migrations."""
