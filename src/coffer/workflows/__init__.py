"""Durable operations (DBOS workflows of idempotent steps)."""
