"""The HTTP surface: Trove v1.0, Coffer extensions and the agent protocol."""
