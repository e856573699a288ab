"""Persistence: SQLAlchemy Core tables, engine set-up and the encrypted blob store."""
