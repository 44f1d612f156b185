"""Coffer: a self-hosted Database-as-a-Service with a Trove-compatible API."""

__version__ = "0.1.0"
