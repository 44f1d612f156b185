"""The host agent: control client, engine supervisors, command executor, reporter."""
