"""Reading stack templates: parameters, intrinsics, resources, outputs, and every bad
template refused with all of its problems named."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from coffer.stacks import TemplateError, parse_overrides, read_template
from coffer.stacks.intrinsics import AttrRef, ResourceRef
from coffer.stacks.parameters import resolve_parameters
from coffer.stacks.resources import ClusterSpec, InstanceSpec, ResourceType

TEMPLATE = textwrap.dedent(
    """
    heat_template_version: 2021-04-16
    description: two instances and a cluster
    parameters:
      flavor:
        type: string
        default: tiny
      size:
        type: number
        default: 1
        constraints:
          - range: {min: 1, max: 10}
      app_password:
        type: string
        hidden: true
        default: s3cret-pw
    resources:
      cache:
        type: OS::Trove::Instance
        properties:
          flavor: {get_param: flavor}
          size: {get_param: size}
          datastore_type: redis
      db:
        type: OS::Trove::Instance
        properties:
          name: shop-db
          flavor: small
          size: 2
          datastore_type: postgresql
          datastore_version: 15
          databases: [{name: shop}]
          users:
            - {name: app, password: {get_param: app_password}, databases: [shop]}
      replica:
        type: OS::Trove::Instance
        properties:
          flavor: small
          size: 2
          replica_of: {get_resource: db}
      ring:
        type: OS::Trove::Cluster
        depends_on: cache
        properties:
          datastore_type: redis
          datastore_version: "7.0"
          instances:
            - {flavor: tiny, volume_size: 1}
            - {flavor: tiny, volume_size: 1}
            - {flavor: tiny, volume_size: 1}
    outputs:
      db_host:
        value: {get_attr: [db, hostname]}
      db_port:
        value: {get_attr: [db, port]}
      first_member:
        value: {get_attr: [ring, instances, 0]}
      db_id:
        value: {get_resource: db}
    """
)


def _problems(text: str, **overrides: str) -> str:
    with pytest.raises(TemplateError) as caught:
        read_template(text, stack_name="demo", parameters=overrides)
    return str(caught.value)


def _with(change: dict[str, Any]) -> str:
    """TEMPLATE with ``change`` merged into its top-level mapping (one level deep)."""
    data = yaml.safe_load(TEMPLATE)
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    return yaml.safe_dump(data)


def test_a_full_template_is_read() -> None:
    stack = read_template(TEMPLATE, stack_name="demo")
    assert [r.name for r in stack.resources] == ["cache", "db", "replica", "ring"]
    cache = stack.resource("cache")
    assert cache.type is ResourceType.INSTANCE
    assert cache.spec == InstanceSpec(
        name="demo-cache", flavor="tiny", size=1, datastore_type="redis"
    )
    db = stack.resource("db").spec
    assert isinstance(db, InstanceSpec)
    assert (db.name, db.datastore_version, [d.name for d in db.databases]) == (
        "shop-db",
        "15",
        ["shop"],
    )
    (user,) = db.users
    assert (user.name, user.password, user.host, user.databases) == (
        "app",
        "s3cret-pw",
        "%",
        ("shop",),
    )
    assert "s3cret-pw" not in repr(db)
    replica = stack.resource("replica")
    assert isinstance(replica.spec, InstanceSpec)
    assert replica.spec.replica_of == ResourceRef("db")
    assert replica.depends_on == {"db"}
    ring = stack.resource("ring")
    assert isinstance(ring.spec, ClusterSpec)
    assert (ring.spec.name, ring.spec.datastore_version, len(ring.spec.instances)) == (
        "demo-ring",
        "7.0",
        3,
    )
    assert ring.depends_on == {"cache"}
    outputs = {o.name: o.value for o in stack.outputs}
    assert outputs == {
        "db_host": AttrRef("db", "hostname"),
        "db_port": AttrRef("db", "port"),
        "first_member": AttrRef("ring", "instances", (0,)),
        "db_id": ResourceRef("db"),
    }


def test_parameters_override_defaults_with_their_type() -> None:
    stack = read_template(TEMPLATE, stack_name="demo", parameters={"flavor": "small", "size": "3"})
    assert stack.resource("cache").spec == InstanceSpec(
        name="demo-cache", flavor="small", size=3, datastore_type="redis"
    )


def test_get_param_with_a_path() -> None:
    text = textwrap.dedent(
        """
        heat_template_version: wallaby
        parameters:
          sizes: {type: json, default: {db: [4, 5]}}
          flavors: {type: comma_delimited_list, default: "tiny, small"}
        resources:
          db:
            type: OS::Trove::Instance
            properties:
              flavor: {get_param: [flavors, 1]}
              size: {get_param: [sizes, db, 0]}
        """
    )
    spec = read_template(text, stack_name="s").resource("db").spec
    assert isinstance(spec, InstanceSpec)
    assert (spec.flavor, spec.size) == ("small", 4)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"heat_template_version": "2099-01-01"}, "is not a Heat template version"),
        ({"heat_template_version": None}, "heat_template_version is required"),
        (
            {"resources": {"cache": {"type": "OS::Nova::Server"}}},
            "is not a supported resource type",
        ),
        (
            {"resources": {"cache": {"type": "OS::Trove::Instance", "properties": {"size": 1}}}},
            "resources.cache.properties.flavor is required",
        ),
        (
            {
                "resources": {
                    "cache": {"type": "OS::Trove::Instance", "properties": {"flavor": "t"}}
                }
            },
            "resources.cache.properties.size is required",
        ),
        (
            {
                "resources": {
                    "cache": {
                        "type": "OS::Trove::Instance",
                        "properties": {"flavor": "t", "size": 151},
                    }
                }
            },
            "must be within 1..150",
        ),
        (
            {
                "resources": {
                    "ring": {
                        "type": "OS::Trove::Cluster",
                        "properties": {"datastore_type": "redis"},
                    }
                }
            },
            "resources.ring.properties.datastore_version is required",
        ),
        (
            {
                "resources": {
                    "cache": {
                        "type": "OS::Trove::Instance",
                        "properties": {"flavor": "t", "size": 1, "colour": "red"},
                    }
                }
            },
            "unknown properties: colour",
        ),
        (
            {
                "resources": {
                    "cache": {
                        "type": "OS::Trove::Instance",
                        "properties": {"flavor": "t", "size": 1, "networks": []},
                    }
                }
            },
            "networks is a Heat property Coffer does not support",
        ),
        (
            {
                "resources": {
                    "cache": {
                        "type": "OS::Trove::Instance",
                        "properties": {"flavor": "t", "size": 1, "datastore_version": "15"},
                    }
                }
            },
            "datastore_version needs datastore_type",
        ),
        (
            {
                "resources": {
                    "cache": {
                        "type": "OS::Trove::Instance",
                        "properties": {"flavor": {"get_param": "nope"}, "size": 1},
                    }
                }
            },
            "get_param names unknown parameter 'nope'",
        ),
        (
            {
                "resources": {
                    "cache": {
                        "type": "OS::Trove::Instance",
                        "properties": {"flavor": {"str_replace": {}}, "size": 1},
                    }
                }
            },
            "the Heat function 'str_replace' is not supported",
        ),
        (
            {
                "resources": {
                    "cache": {
                        "type": "OS::Trove::Instance",
                        "properties": {"flavor": {"get_attr": ["db"]}, "size": 1},
                    }
                }
            },
            "get_attr takes [resource, attribute, path...]",
        ),
        (
            {
                "resources": {
                    "cache": {
                        "type": "OS::Trove::Instance",
                        "properties": {"flavor": {"get_resource": "db"}, "size": 1},
                    }
                }
            },
            "flavor cannot be get_resource or get_attr here",
        ),
        (
            {
                "resources": {
                    "replica": {
                        "type": "OS::Trove::Instance",
                        "properties": {
                            "flavor": "t",
                            "size": 1,
                            "replica_of": {"get_resource": "nothing"},
                        },
                    }
                }
            },
            "refers to unknown resource 'nothing'",
        ),
        (
            {
                "resources": {
                    "replica": {
                        "type": "OS::Trove::Instance",
                        "properties": {
                            "flavor": "t",
                            "size": 1,
                            "replica_of": {"get_resource": "ring"},
                        },
                    }
                }
            },
            "get_resource 'ring' is a cluster, not an instance",
        ),
        (
            {"outputs": {"x": {"value": {"get_attr": ["db", "password"]}}}},
            "has no attribute 'password'",
        ),
        (
            {"outputs": {"x": {"description": "no value"}}},
            "outputs.x must be a mapping with a value",
        ),
        ({"conditions": {}}, "unknown sections: conditions"),
        (
            {
                "resources": {
                    "cache": {
                        "type": "OS::Trove::Instance",
                        "depends_on": "ghost",
                        "properties": {"flavor": "t", "size": 1},
                    }
                }
            },
            "depends_on names unknown resource 'ghost'",
        ),
    ],
)
def test_bad_templates_are_refused(change: dict[str, Any], expected: str) -> None:
    assert expected in _problems(_with(change))


def test_users_must_name_declared_databases() -> None:
    text = _with(
        {
            "resources": {
                "db": {
                    "type": "OS::Trove::Instance",
                    "properties": {
                        "flavor": "small",
                        "size": 1,
                        "databases": [{"name": "shop"}, {"name": "shop"}],
                        "users": [
                            {"name": "app", "password": "pw", "databases": ["other"]},
                            {"name": "nopass", "databases": ["shop"]},
                            {"name": "nodbs", "password": "pw", "databases": []},
                        ],
                    },
                }
            }
        }
    )
    problems = _problems(text)
    assert "names 'other', which the instance's databases lack" in problems
    assert "users[1].password is required" in problems
    assert "users[2].databases must name at least one database" in problems
    assert "declares 'shop' twice" in problems


def test_a_dependency_cycle_is_refused() -> None:
    text = _with(
        {
            "resources": {
                "a": {
                    "type": "OS::Trove::Instance",
                    "depends_on": "b",
                    "properties": {"flavor": "t", "size": 1},
                },
                "b": {
                    "type": "OS::Trove::Instance",
                    "properties": {"flavor": "t", "size": 1, "replica_of": {"get_resource": "a"}},
                },
                "c": {
                    "type": "OS::Trove::Instance",
                    "depends_on": ["c"],
                    "properties": {"flavor": "t", "size": 1},
                },
            }
        }
    )
    problems = _problems(text)
    assert "a cycle: a -> b -> a" in problems
    assert "resources.c depends on itself" in problems


def test_every_problem_is_reported_at_once() -> None:
    text = _with({"heat_template_version": "1999-01-01", "resources": {"cache": {"type": "Nope"}}})
    with pytest.raises(TemplateError) as caught:
        read_template(text, stack_name="demo")
    assert len(caught.value.problems) == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "must be a YAML mapping"),
        ("a: [1, 2", "not valid YAML at line"),
        ("- just\n- a list\n", "must be a YAML mapping"),
        ("heat_template_version: 2021-04-16\n", "resources must be a mapping holding at least one"),
    ],
)
def test_not_a_template(text: str, expected: str) -> None:
    assert expected in _problems(text)


@pytest.mark.parametrize("name", ["", "1abc", "a b", "a/b", "x" * 101, "../up"])
def test_bad_stack_names(name: str) -> None:
    with pytest.raises(TemplateError, match="stack name"):
        read_template(TEMPLATE, stack_name=name)


def test_parameter_problems() -> None:
    assert "--parameter 'nope' is not declared" in _problems(TEMPLATE, nope="1")
    assert "--parameter size: '11' must be within 1..10" in _problems(TEMPLATE, size="11")
    assert "is not a number" in _problems(TEMPLATE, size="big")
    hidden = _problems(TEMPLATE, size="big", app_password="")
    assert "parameter 'app_password'" not in hidden  # an empty string is still a value
    text = _with({"parameters": {"p": {"type": "string"}}})
    assert "parameter 'p' has no default: give --parameter p=VALUE" in _problems(text)
    text = _with({"parameters": {"p": {"type": "text", "default": "x"}}})
    assert "parameters.p.type must be one of" in _problems(text)


def test_hidden_parameter_values_stay_out_of_messages() -> None:
    declarations = {"pw": {"type": "number", "hidden": True}}
    _values, problems = resolve_parameters(declarations, {"pw": "hunter2"})
    assert problems and "hunter2" not in problems[0]


def test_parse_overrides() -> None:
    assert parse_overrides(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    for bad in (["novalue"], ["=1"], ["a=1", "a=2"]):
        with pytest.raises(ValueError):
            parse_overrides(bad)


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_number_parameters_round_trip(value: int) -> None:
    values, problems = resolve_parameters({"n": {"type": "number"}}, {"n": str(value)})
    assert problems == [] and values == {"n": value}


@given(st.lists(st.text(alphabet="abcxyz019-_", min_size=1), min_size=1))
def test_list_parameters_split_on_commas(items: list[str]) -> None:
    declarations = {"l": {"type": "comma_delimited_list"}}
    values, problems = resolve_parameters(declarations, {"l": ",".join(items)})
    assert problems == [] and values == {"l": items}


@given(st.booleans(), st.sampled_from(["{}", "upper", "title"]))
def test_boolean_parameters(value: bool, style: str) -> None:
    text = str(value).lower()
    text = text.upper() if style == "upper" else text.title() if style == "title" else text
    values, problems = resolve_parameters({"b": {"type": "boolean"}}, {"b": text})
    assert problems == [] and values == {"b": value}
