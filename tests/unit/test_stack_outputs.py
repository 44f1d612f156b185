"""Outputs: get_resource and get_attr read from the server's views (pure)."""

from __future__ import annotations

import textwrap

from coffer.stacks import read_template
from coffer.stacks.outputs import resolve_outputs

TEMPLATE = textwrap.dedent(
    """
    heat_template_version: 2021-04-16
    resources:
      db:
        type: OS::Trove::Instance
        properties: {flavor: tiny, size: 1}
      ring:
        type: OS::Trove::Cluster
        properties:
          datastore_type: redis
          datastore_version: "7.0"
          instances: [{flavor: tiny, volume_size: 1}]
    outputs:
      id: {value: {get_resource: db}}
      host: {value: {get_attr: [db, hostname]}}
      url:
        value:
          href: {get_attr: [db, href]}
          address: [{get_attr: [db, ip, 0]}, {get_attr: [db, port]}]
      members: {value: {get_attr: [ring, instances]}}
      second_member: {value: {get_attr: [ring, instances, 1]}}
      ring_ip: {value: {get_attr: [ring, ip]}}
      missing: {value: {get_attr: [ring, ip, 5]}}
    """
)
DB_VIEW = {
    "id": "i-1",
    "hostname": "127.0.0.1",
    "ip": ["127.0.0.1"],
    "port": 15001,
    "links": [
        {"rel": "bookmark", "href": "https://h/instances/i-1"},
        {"rel": "self", "href": "https://h/v1.0/p/instances/i-1"},
    ],
}
RING_VIEW = {"id": "c-1", "instances": [{"id": "m-1"}, {"id": "m-2"}], "ip": ["127.0.0.1"]}


def test_outputs_from_views() -> None:
    stack = read_template(TEMPLATE, stack_name="demo")
    outputs = resolve_outputs(stack, {"db": DB_VIEW, "ring": RING_VIEW})
    assert outputs == {
        "id": "i-1",
        "host": "127.0.0.1",
        "url": {"href": "https://h/v1.0/p/instances/i-1", "address": ["127.0.0.1", 15001]},
        "members": ["m-1", "m-2"],
        "second_member": "m-2",
        "ring_ip": ["127.0.0.1"],
        "missing": None,
    }


def test_outputs_of_resources_not_there_are_none() -> None:
    stack = read_template(TEMPLATE, stack_name="demo")
    outputs = resolve_outputs(stack, {"db": DB_VIEW})
    assert outputs["members"] is None and outputs["ring_ip"] is None and outputs["id"] == "i-1"
