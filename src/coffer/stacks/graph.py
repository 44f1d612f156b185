"""Dependency order of a stack's resources: waves that can run side by side, and the
cycle that prevents any order."""

from __future__ import annotations

from collections.abc import Mapping, Set

__all__ = ["find_cycle", "waves"]


def find_cycle(depends: Mapping[str, Set[str]]) -> list[str] | None:
    """A dependency cycle as ``[a, b, ..., a]``, or None. Names outside ``depends``'
    keys are ignored (they are reported elsewhere)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(depends[node]):
            if dep not in depends:
                continue
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state:
                found = visit(dep)
                if found is not None:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(depends):
        if node not in state:
            found = visit(node)
            if found is not None:
                return found
    return None


def waves(depends: Mapping[str, Set[str]]) -> list[list[str]]:
    """Resources in waves: each one's dependencies (within ``depends``) all sit in
    earlier waves; each wave is sorted by name. Raises ``ValueError`` on a cycle."""
    remaining = {node: {d for d in deps if d in depends} for node, deps in depends.items()}
    out: list[list[str]] = []
    done: set[str] = set()
    while remaining:
        ready = sorted(node for node, deps in remaining.items() if deps <= done)
        if not ready:
            cycle = find_cycle(depends) or sorted(remaining)
            raise ValueError(f"dependency cycle: {' -> '.join(cycle)}")
        out.append(ready)
        done.update(ready)
        for node in ready:
            del remaining[node]
    return out
