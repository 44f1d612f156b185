"""Benchmarks that print figures about Coffer against bare engines; never tests.

Run from the repository root, e.g. ``.venv/bin/python bench/provision.py``.
"""
