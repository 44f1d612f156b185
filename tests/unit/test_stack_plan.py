"""Planning an apply: what is created, updated in place, kept, deleted or refused, from
the template, the server's views and the state file (pure)."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coffer.stacks import Stack, read_template
from coffer.stacks.passwords import password_digest
from coffer.stacks.plan import (
    AttachConfiguration,
    ChangePassword,
    Create,
    CreateDatabases,
    CreateUser,
    Delete,
    DeleteDatabase,
    DeleteUser,
    DetachConfiguration,
    Grant,
    GrowVolume,
    Keep,
    Observation,
    ObservedCluster,
    ObservedInstance,
    RecordedResource,
    Rename,
    ResizeFlavor,
    Revoke,
    Update,
    decide,
)
from coffer.stacks.resources import ResourceType

FLAVORS = {"tiny": "1", "1": "1", "small": "2", "2": "2"}
DATASTORES = {"redis": frozenset({"7.0"}), "postgresql": frozenset({"15"})}
PASSWORD = "app-pw-1"
DIGEST = password_digest(PASSWORD)

TEMPLATE = textwrap.dedent(
    """
    heat_template_version: 2021-04-16
    parameters:
      db_name: {type: string, default: shop-db}
      db_size: {type: number, default: 2}
    resources:
      cache:
        type: OS::Trove::Instance
        properties: {flavor: tiny, size: 1, datastore_type: redis}
      db:
        type: OS::Trove::Instance
        properties:
          name: {get_param: db_name}
          flavor: tiny
          size: {get_param: db_size}
          datastore_type: postgresql
          databases: [{name: shop}]
          users: [{name: app, password: app-pw-1, databases: [shop]}]
      ring:
        type: OS::Trove::Cluster
        properties:
          datastore_type: redis
          datastore_version: "7.0"
          instances: [{flavor: tiny, volume_size: 1}, {flavor: tiny, volume_size: 1}]
    """
)


def _stack(**parameters: str) -> Stack:
    return read_template(TEMPLATE, stack_name="demo", parameters=parameters)


def _cache() -> ObservedInstance:
    return ObservedInstance("i-cache", "demo-cache", "1", 1, "redis", "7.0")


def _db(**changes: object) -> ObservedInstance:
    seen = ObservedInstance(
        "i-db",
        "shop-db",
        "1",
        2,
        "postgresql",
        "15",
        databases=frozenset({"shop"}),
        users={"app@%": frozenset({"shop"})},
    )
    return replace(seen, **changes)  # type: ignore[arg-type]


def _ring() -> ObservedCluster:
    return ObservedCluster("c-ring", "demo-ring", "redis", "7.0", (("1", 1), ("1", 1)))


def _recorded(**extra: RecordedResource) -> dict[str, RecordedResource]:
    records = {
        "cache": RecordedResource("i-cache", ResourceType.INSTANCE),
        "db": RecordedResource(
            "i-db", ResourceType.INSTANCE, databases=frozenset({"shop"}), users={"app@%": DIGEST}
        ),
        "ring": RecordedResource("c-ring", ResourceType.CLUSTER),
    }
    records.update(extra)
    return records


def _observation(
    observed: Mapping[str, ObservedInstance | ObservedCluster] | None = None,
    recorded: Mapping[str, RecordedResource] | None = None,
) -> Observation:
    if observed is None:
        observed = {"cache": _cache(), "db": _db(), "ring": _ring()}
    return Observation(
        recorded if recorded is not None else _recorded(), observed, FLAVORS, DATASTORES
    )


def _action(plan_actions: list[object], name: str) -> object:
    (found,) = [a for a in plan_actions if getattr(a, "resource", None) == name]
    return found


def test_nothing_exists_so_everything_is_created() -> None:
    plan = decide(_stack(), Observation({}, {}, FLAVORS, DATASTORES))
    assert plan.refusals == ()
    created = {a.resource: a for a in plan.actions}
    assert set(created) == {"cache", "db", "ring"}
    assert all(isinstance(a, Create) and not a.recreated for a in created.values())
    db = created["db"]
    assert isinstance(db, Create) and db.flavor_ids == ("1",)
    assert [s.describe() for s in db.steps] == ["create databases shop", "create user app@%"]
    ring = created["ring"]
    assert isinstance(ring, Create) and ring.flavor_ids == ("1", "1")
    assert plan.summary() == "3 to create"


def test_in_sync_means_no_change() -> None:
    plan = decide(_stack(), _observation())
    assert plan.refusals == ()
    assert all(isinstance(a, Keep) for a in plan.actions)
    assert not plan.changes_anything and plan.summary() == "no change"


def test_rename_resize_and_grow_in_place() -> None:
    plan = decide(_stack(db_name="renamed", db_size="5"), _observation())
    assert plan.refusals == ()
    update = _action(plan.actions, "db")
    assert update == Update("db", "i-db", (Rename("renamed"), GrowVolume(5)))
    seen = {"cache": _cache(), "db": _db(flavor_id="2"), "ring": _ring()}
    update = _action(decide(_stack(), _observation(seen)).actions, "db")
    assert update == Update("db", "i-db", (ResizeFlavor("1", "tiny"),))


def test_a_recorded_resource_the_server_lost_is_recreated() -> None:
    plan = decide(_stack(), _observation({"db": _db(), "ring": _ring()}))
    cache = _action(plan.actions, "cache")
    assert isinstance(cache, Create) and cache.recreated


@pytest.mark.parametrize(
    ("seen", "expected"),
    [
        (_db(size=3), "size cannot shrink (3 GB -> 2 GB)"),
        (
            _db(datastore_type="mariadb"),
            "datastore_type cannot change in place (mariadb -> postgresql)",
        ),
        (
            _db(replica_of="i-other"),
            "replica_of cannot change in place (i-other -> a new instance)",
        ),
    ],
)
def test_what_cannot_change_in_place_is_refused(seen: ObservedInstance, expected: str) -> None:
    plan = decide(_stack(), _observation({"cache": _cache(), "db": seen, "ring": _ring()}))
    assert any(expected in r for r in plan.refusals), plan.refusals


def test_a_changed_cluster_is_refused() -> None:
    ring = replace(_ring(), members=(("1", 1), ("1", 1), ("1", 1)))
    plan = decide(_stack(), _observation({"cache": _cache(), "db": _db(), "ring": ring}))
    (refusal,) = plan.refusals
    assert "an OS::Trove::Cluster cannot change in place (instances changed)" in refusal


def test_a_resource_that_changed_type_is_refused() -> None:
    recorded = _recorded(cache=RecordedResource("c-x", ResourceType.CLUSTER))
    plan = decide(_stack(), _observation(recorded=recorded))
    assert any(
        "is a OS::Trove::Cluster; the template makes it a OS::Trove::Instance" in r
        for r in plan.refusals
    )


def test_unknown_flavor_and_datastore_are_refused_before_creating() -> None:
    text = TEMPLATE.replace(
        "flavor: tiny, size: 1, datastore_type: redis",
        "flavor: huge, size: 1, datastore_type: cassandra",
    )
    stack = read_template(text, stack_name="demo")
    plan = decide(stack, Observation({}, {}, FLAVORS, DATASTORES))
    assert any("flavor 'huge' does not exist" in r for r in plan.refusals)
    assert any("datastore_type 'cassandra' does not exist" in r for r in plan.refusals)
    text = TEMPLATE.replace('datastore_version: "7.0"', 'datastore_version: "6.2"')
    plan = decide(read_template(text, stack_name="demo"), Observation({}, {}, FLAVORS, DATASTORES))
    assert any("datastore_version '6.2' of redis does not exist" in r for r in plan.refusals)


def test_configuration_attach_detach_and_swap() -> None:
    text = TEMPLATE.replace(
        "datastore_type: postgresql\n", "datastore_type: postgresql\n      configuration: cfg-b\n"
    )
    stack = read_template(text, stack_name="demo")

    def steps(attached: tuple[str, ...]) -> object:
        seen = {"cache": _cache(), "db": _db(configuration=attached), "ring": _ring()}
        return _action(decide(stack, _observation(seen)).actions, "db")

    assert steps(()) == Update("db", "i-db", (AttachConfiguration("cfg-b"),))
    assert steps(("cfg-a", "a")) == Update(
        "db", "i-db", (DetachConfiguration(), AttachConfiguration("cfg-b"))
    )
    assert steps(("id-b", "cfg-b")) == Keep("db", "i-db")  # named by its name
    seen = {"cache": _cache(), "db": _db(configuration=("cfg-a", "a")), "ring": _ring()}
    assert _action(decide(_stack(), _observation(seen)).actions, "db") == Update(
        "db", "i-db", (DetachConfiguration(),)
    )


def test_databases_and_users_follow_the_template() -> None:
    text = TEMPLATE.replace(
        "databases: [{name: shop}]\n"
        "      users: [{name: app, password: app-pw-1, databases: [shop]}]",
        "databases: [{name: shop}, {name: audit}]\n"
        "      users: [{name: app, password: new-pw, databases: [audit]},"
        " {name: ro, password: ro-pw, databases: [shop]}]",
    )
    stack = read_template(text, stack_name="demo")
    recorded = _recorded(
        db=RecordedResource(
            "i-db",
            ResourceType.INSTANCE,
            databases=frozenset({"shop", "old"}),
            users={"app@%": DIGEST, "gone@%": DIGEST},
        )
    )
    seen = _db(
        databases=frozenset({"shop", "old", "theirs"}),
        users={"app@%": frozenset({"shop"}), "gone@%": frozenset(), "theirs@%": frozenset()},
    )
    update = _action(
        decide(
            stack, _observation({"cache": _cache(), "db": seen, "ring": _ring()}, recorded)
        ).actions,
        "db",
    )
    assert isinstance(update, Update)
    kinds = [type(s) for s in update.steps]
    assert kinds == [
        CreateDatabases,
        Grant,
        Revoke,
        ChangePassword,
        CreateUser,
        DeleteUser,
        DeleteDatabase,
    ]
    described = [s.describe() for s in update.steps]
    assert described == [
        "create databases audit",
        "grant app@% audit",
        "revoke app@% shop",
        "set password of app@%",
        "create user ro@%",
        "delete user gone@%",
        "delete database old",  # 'theirs' was never the stack's: left alone
    ]
    assert all("new-pw" not in repr(s) for s in update.steps)


def test_a_user_without_a_recorded_digest_gets_its_password_set() -> None:
    recorded = _recorded(db=RecordedResource("i-db", ResourceType.INSTANCE))
    update = _action(decide(_stack(), _observation(recorded=recorded)).actions, "db")
    assert isinstance(update, Update) and [type(s) for s in update.steps] == [ChangePassword]


def test_resources_dropped_from_the_template_are_deleted_dependents_first() -> None:
    stack = read_template(TEMPLATE, stack_name="demo")
    recorded = _recorded(
        old=RecordedResource("i-old", ResourceType.INSTANCE),
        old_replica=RecordedResource("i-rep", ResourceType.INSTANCE, frozenset({"old"})),
        lost=RecordedResource("i-lost", ResourceType.INSTANCE),
    )
    observed = {
        "cache": _cache(),
        "db": _db(),
        "ring": _ring(),
        "old": replace(_cache(), id="i-old"),
        "old_replica": replace(_cache(), id="i-rep"),
    }
    plan = decide(stack, _observation(observed, recorded))
    assert plan.deletes == (
        (Delete("old_replica", "i-rep", ResourceType.INSTANCE),),
        (Delete("old", "i-old", ResourceType.INSTANCE),),
    )
    assert plan.summary() == "2 to delete (others unchanged)"


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.text(alphabet="abcdefghij-", min_size=1, max_size=20).filter(lambda s: s[0] != "-"),
    size=st.integers(min_value=1, max_value=150),
    flavor=st.sampled_from(["tiny", "small"]),
)
def test_observing_what_was_applied_plans_no_change(name: str, size: int, flavor: str) -> None:
    text = TEMPLATE.replace("flavor: tiny\n      size:", f"flavor: {flavor}\n      size:")
    assert text != TEMPLATE or flavor == "tiny"
    stack = read_template(
        text, stack_name="demo", parameters={"db_name": name, "db_size": str(size)}
    )
    seen = _db(name=name, size=size, flavor_id=FLAVORS[flavor])
    plan = decide(stack, _observation({"cache": _cache(), "db": seen, "ring": _ring()}))
    assert plan.refusals == () and not plan.changes_anything


@settings(deadline=None)
@given(old=st.integers(min_value=1, max_value=150), new=st.integers(min_value=1, max_value=150))
def test_volume_only_grows(old: int, new: int) -> None:
    stack = _stack(db_size=str(new))
    plan = decide(stack, _observation({"cache": _cache(), "db": _db(size=old), "ring": _ring()}))
    if new > old:
        assert plan.refusals == () and _action(plan.actions, "db") == Update(
            "db", "i-db", (GrowVolume(new),)
        )
    elif new < old:
        assert len(plan.refusals) == 1 and "cannot shrink" in plan.refusals[0]
    else:
        assert plan.refusals == () and not plan.changes_anything
