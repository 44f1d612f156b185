"""Dependency order of stack resources: waves respect every dependency; cycles are found."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coffer.stacks.graph import find_cycle, waves


def test_waves_put_dependencies_first() -> None:
    depends = {"replica": {"db"}, "db": set(), "cache": set(), "ring": {"cache", "db"}}
    assert waves(depends) == [["cache", "db"], ["replica", "ring"]]


def test_dependencies_outside_the_graph_are_ignored() -> None:
    assert waves({"a": {"gone"}}) == [["a"]]
    assert find_cycle({"a": {"gone"}}) is None


def test_a_cycle_is_named() -> None:
    depends = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert find_cycle(depends) == ["a", "b", "c", "a"]
    with pytest.raises(ValueError, match="dependency cycle: a -> b -> c -> a"):
        waves(depends)


@st.composite
def dags(draw: st.DrawFn) -> dict[str, set[str]]:
    """Random DAGs: node i may only depend on nodes before it."""
    count = draw(st.integers(min_value=0, max_value=12))
    names = [f"r{i}" for i in range(count)]
    return {
        name: set(draw(st.lists(st.sampled_from(names[:i]), max_size=i))) if i else set()
        for i, name in enumerate(names)
    }


@given(dags())
def test_waves_of_any_dag(depends: dict[str, set[str]]) -> None:
    layers = waves(depends)
    position = {name: i for i, layer in enumerate(layers) for name in layer}
    assert sorted(position) == sorted(depends)  # every resource exactly once
    for name, deps in depends.items():
        assert all(position[d] < position[name] for d in deps)
    assert find_cycle(depends) is None


@given(dags(), st.data())
def test_a_back_edge_makes_a_cycle(depends: dict[str, set[str]], data: st.DataObject) -> None:
    chains = [(n, d) for n, deps in depends.items() for d in deps]
    if not chains:
        return
    node, dep = data.draw(st.sampled_from(chains))
    depends[dep] = depends[dep] | {node}
    cycle = find_cycle(depends)
    assert cycle is not None and cycle[0] == cycle[-1]
    for before, after in itertools.pairwise(cycle):
        assert after in depends[before]
