"""Use cases. The only layer that opens and commits metadata transactions."""
