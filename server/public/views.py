"""Residents pages."""
from server.public import bp  # noqa: F401
