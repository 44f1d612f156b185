"""The coffer.dbaas Ansible collection, run by the real ``ansible-playbook`` against a real
Coffer (PostgreSQL instance, database, user, configuration group, backup): results checked
through the API and the engine, a second run changes nothing, check mode creates nothing,
bad input fails with the server's message, ``state: absent`` removes everything."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from coffer.client import CofferAPIError, CofferClient, WaitUntil
from tests.support.api import fault
from tests.support.processes import ROOT, CofferServer, Credentials

pytestmark = pytest.mark.integration

MODULES = ("instance", "database", "user", "backup", "configuration")

HEADER = """
- name: Coffer through coffer.dbaas
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
"""

PRESENT = (
    HEADER
    + """
    - name: configuration group
      coffer.dbaas.configuration:
        name: "{{ prefix }}-tuning"
        datastore: postgresql
        datastore_version: "15"
        description: bigger sorts
        values:
          work_mem: 16384
    - name: instance
      coffer.dbaas.instance:
        name: "{{ prefix }}-db"
        datastore: postgresql
        datastore_version: "15"
        flavor: "{{ flavor | default('tiny') }}"
        volume_size: 1
        configuration: "{{ group | default(prefix ~ '-tuning') }}"
        wait_timeout: 300
    - name: database
      coffer.dbaas.database:
        instance: "{{ prefix }}-db"
        name: shop
    - name: user
      coffer.dbaas.user:
        instance: "{{ prefix }}-db"
        name: app
        password: "{{ app_password }}"
        databases: [shop]
    - name: backup
      coffer.dbaas.backup:
        name: "{{ prefix }}-backup"
        instance: "{{ prefix }}-db"
        wait_timeout: 600
"""
)

NEW_IN_CHECK_MODE = (
    HEADER
    + """
    - coffer.dbaas.configuration:
        name: "{{ prefix }}-other"
        datastore: postgresql
        values: {work_mem: 2048}
    - coffer.dbaas.instance:
        name: "{{ prefix }}-other"
        datastore: postgresql
        flavor: tiny
        volume_size: 1
    - coffer.dbaas.database:
        instance: "{{ prefix }}-db"
        name: extra
    - coffer.dbaas.user:
        instance: "{{ prefix }}-db"
        name: reader
        password: "{{ app_password }}"
    - coffer.dbaas.backup:
        name: "{{ prefix }}-other"
        instance: "{{ prefix }}-db"
"""
)

BAD_INPUT = (
    HEADER
    + """
    - name: unknown flavor
      coffer.dbaas.instance:
        name: "{{ prefix }}-bad"
        datastore: postgresql
        flavor: no-such-flavor
        volume_size: 1
      ignore_errors: true
    - name: bad configuration value
      coffer.dbaas.configuration:
        name: "{{ prefix }}-bad"
        datastore: postgresql
        values: {work_mem: lots}
      ignore_errors: true
    - name: user without a password
      coffer.dbaas.user:
        instance: "{{ prefix }}-db"
        name: nopass
      ignore_errors: true
    - name: database on an instance that does not exist
      coffer.dbaas.database:
        instance: "{{ prefix }}-nowhere"
        name: shop
      ignore_errors: true
    - name: shrinking the volume
      coffer.dbaas.instance:
        name: "{{ prefix }}-db"
        volume_size: 0
      ignore_errors: true
"""
)

ABSENT = (
    HEADER
    + """
    - coffer.dbaas.backup:
        name: "{{ prefix }}-backup"
        state: absent
    - coffer.dbaas.user:
        instance: "{{ prefix }}-db"
        name: app
        state: absent
    - coffer.dbaas.database:
        instance: "{{ prefix }}-db"
        name: shop
        state: absent
    - coffer.dbaas.instance:
        name: "{{ prefix }}-db"
        state: absent
    - coffer.dbaas.configuration:
        name: "{{ prefix }}-tuning"
        state: absent
"""
)

_RECAP = re.compile(
    r"^localhost\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=\d+\s+"
    r"failed=(?P<failed>\d+)\s+skipped=\d+\s+rescued=\d+\s+ignored=(?P<ignored>\d+)",
    re.MULTILINE,
)
_FATAL = re.compile(r"^fatal: \[localhost\]: FAILED! => (\{.*\})$", re.MULTILINE)


@dataclass
class Run:
    """One ``ansible-playbook`` run: its exit code, output, PLAY RECAP counts and the
    result of every failed task (in order)."""

    returncode: int
    output: str
    recap: dict[str, int]
    failures: list[dict[str, Any]]


def ansible_tool(name: str) -> str:
    """``ansible-playbook`` (or another tool) of the venv running the tests."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is not installed (ansible-core is a test dependency)"
    return found


@dataclass
class Ansible:
    """Runs playbooks against one Coffer project, in a scratch directory it owns."""

    workdir: Path
    creds: Credentials
    extra_vars: dict[str, Any]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            ANSIBLE_COLLECTIONS_PATH=str(ROOT),
            ANSIBLE_HOME=str(self.workdir / "home"),
            ANSIBLE_LOCAL_TEMP=str(self.workdir / "tmp"),
            ANSIBLE_REMOTE_TEMP=str(self.workdir / "remote-tmp"),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_RETRY_FILES_ENABLED="0",
            ANSIBLE_LOCALHOST_WARNING="0",
            ANSIBLE_CALLBACK_RESULT_FORMAT="json",
            ANSIBLE_CALLBACK_FORMAT_PRETTY="0",
            COFFER_ENDPOINT=self.creds.endpoint,
            COFFER_TOKEN=self.creds.token,
        )
        return env

    def playbook(self, text: str, *args: str, **extra_vars: Any) -> Run:
        playbook = self.workdir / "playbook.yml"
        playbook.write_text(text)
        variables = self.workdir / "vars.json"
        variables.write_text(json.dumps({**self.extra_vars, **extra_vars}))
        res = subprocess.run(
            [
                ansible_tool("ansible-playbook"),
                "-i",
                "localhost,",
                "-c",
                "local",
                "-e",
                f"@{variables}",
                *args,
                str(playbook),
            ],
            env=self.env(),
            cwd=str(self.workdir),
            capture_output=True,
            text=True,
            timeout=1200,
        )
        output = res.stdout + res.stderr
        recaps = [
            {k: int(v) for k, v in m.groupdict().items()} for m in _RECAP.finditer(res.stdout)
        ]
        assert len(recaps) == 1, f"no single PLAY RECAP for localhost:\n{output}"
        failures = [json.loads(m.group(1)) for m in _FATAL.finditer(res.stdout)]
        return Run(res.returncode, output, recaps[0], failures)


def expect(run: Run, *, changed: int, ignored: int = 0) -> None:
    assert run.returncode == 0 and run.recap["failed"] == 0, run.output
    assert run.recap["changed"] == changed, run.output
    assert run.recap["ignored"] == ignored, run.output


def setting(inst: dict[str, Any], password: str, name: str) -> str:
    with psycopg.connect(
        host=inst["ip"][0], port=inst["port"], user="app", password=password, dbname="shop"
    ) as conn:
        row = conn.execute(f"SHOW {name}").fetchone()
        assert row is not None
        return str(row[0])


def named(items: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [item for item in items if item.get("name") == name]


def remove_leftovers(client: CofferClient, prefix: str) -> None:
    """Teardown after a failure: delete whatever the playbooks left (best effort)."""
    for backup in client.list_backups():
        if str(backup.get("name", "")).startswith(prefix):
            with contextlib.suppress(CofferAPIError):
                client.delete_backup(backup["id"])
                client.wait_for_backup(backup["id"], until=WaitUntil.DELETED, timeout=120)
    for inst in client.list_instances():
        if str(inst.get("name", "")).startswith(prefix):
            with contextlib.suppress(CofferAPIError):
                client.delete_instance(inst["id"])
                client.wait_for_instance(inst["id"], until=WaitUntil.DELETED, timeout=120)
    for group in client.list_configurations():
        if str(group.get("name", "")).startswith(prefix):
            with contextlib.suppress(CofferAPIError):
                client.delete_configuration(group["id"])


@pytest.fixture
def ansible(tmp_path: Path, admin: Credentials) -> Ansible:
    prefix = f"ans-{uuid.uuid4().hex[:8]}"
    app_password = f"pw-{secrets.token_hex(12)}"
    return Ansible(tmp_path, admin, {"prefix": prefix, "app_password": app_password})


def test_module_docs_parse() -> None:
    """ansible-doc reads every module's documentation (with the shared fragment)."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT), ANSIBLE_NOCOLOR="1")
    names = [f"coffer.dbaas.{m}" for m in MODULES]
    res = subprocess.run(
        [ansible_tool("ansible-doc"), "-t", "module", "--json", *names],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(ROOT),
    )
    assert res.returncode == 0, res.stderr
    docs = json.loads(res.stdout)
    assert set(docs) == set(names)
    for name in names:
        options = docs[name]["doc"]["options"]
        assert {"endpoint", "token", "state"} <= set(options), name
    assert docs["coffer.dbaas.user"]["doc"]["options"]["password"]["type"] == "str"


def test_playbook_lifecycle(server: CofferServer, admin: Credentials, ansible: Ansible) -> None:
    prefix = ansible.extra_vars["prefix"]
    password = ansible.extra_vars["app_password"]
    client = CofferClient(admin.endpoint, admin.token)
    try:
        first = ansible.playbook(PRESENT)
        expect(first, changed=5)
        assert password not in first.output

        # what the API (and the engine) show
        inst = client.find_instance(f"{prefix}-db")
        group = client.find_configuration(f"{prefix}-tuning")
        assert inst["status"] == "ACTIVE" and inst["operating_status"] == "HEALTHY"
        assert inst["datastore"]["type"] == "postgresql" and inst["volume"]["size"] == 1
        assert inst["flavor"]["id"] == "1"
        assert inst["configuration"]["id"] == group["id"]
        assert group["values"] == {"work_mem": 16384} and group["description"] == "bigger sorts"
        assert "shop" in {d["name"] for d in client.list_databases(inst["id"])}
        (app,) = named(client.list_users(inst["id"]), "app")
        assert [d["name"] for d in app["databases"]] == ["shop"]
        (backup,) = named(client.list_backups(), f"{prefix}-backup")
        assert backup["status"] == "COMPLETED" and backup["instance_id"] == inst["id"]
        assert setting(inst, password, "work_mem") == "16MB"

        # a second run changes nothing
        expect(ansible.playbook(PRESENT), changed=0)
        assert len(named(client.list_backups(), f"{prefix}-backup")) == 1

        # changes to an existing instance: detach the group and resize, then re-attach
        expect(ansible.playbook(PRESENT, group="", flavor="small"), changed=1)
        inst = client.get_instance(inst["id"])
        assert "configuration" not in inst and inst["flavor"]["id"] == "2"
        assert setting(inst, password, "work_mem") != "16MB"
        expect(ansible.playbook(PRESENT, flavor="small"), changed=1)
        inst = client.get_instance(inst["id"])
        assert inst["configuration"]["id"] == group["id"] and inst["status"] == "ACTIVE"
        assert setting(inst, password, "work_mem") == "16MB"

        # check mode on new resources: reported as changes, nothing created
        before = (client.list_instances(), client.list_backups(), client.list_configurations())
        checked = ansible.playbook(NEW_IN_CHECK_MODE, "--check")
        expect(checked, changed=5)
        after = (client.list_instances(), client.list_backups(), client.list_configurations())
        assert after == before
        assert {d["name"] for d in client.list_databases(inst["id"])} == {"shop"}
        assert {u["name"] for u in client.list_users(inst["id"])} == {"app"}

        # bad input fails with the server's message and changes nothing
        with admin.client() as http:
            refused_instance = http.post(
                "/instances",
                json={
                    "instance": {
                        "name": f"{prefix}-bad",
                        "flavorRef": "no-such-flavor",
                        "volume": {"size": 1},
                        "datastore": {"type": "postgresql"},
                    }
                },
            )
            refused_group = http.post(
                "/configurations",
                json={
                    "configuration": {
                        "name": f"{prefix}-bad",
                        "values": {"work_mem": "lots"},
                        "datastore": {"type": "postgresql"},
                    }
                },
            )
        assert refused_instance.status_code in (400, 404), refused_instance.text
        assert refused_group.status_code == 422, refused_group.text
        bad = ansible.playbook(BAD_INPUT)
        expect(bad, changed=0, ignored=5)
        messages = [f["msg"] for f in bad.failures]
        assert messages[0] == fault(refused_instance)[2]
        assert bad.failures[0]["status"] == refused_instance.status_code
        assert messages[1] == fault(refused_group)[2]
        assert messages[2] == "password is needed to create user nopass or to set its password"
        assert messages[3] == f"no instance has the id or name '{prefix}-nowhere'"
        assert "cannot shrink to 0 GB" in messages[4]
        assert (client.list_instances(), client.list_configurations()) == (
            after[0],
            after[2],
        )

        # state: absent removes everything, and a second run changes nothing
        expect(ansible.playbook(ABSENT), changed=5)
        assert not named(client.list_instances(), f"{prefix}-db")
        assert not named(client.list_backups(), f"{prefix}-backup")
        assert not named(client.list_configurations(), f"{prefix}-tuning")
        expect(ansible.playbook(ABSENT), changed=0)
    finally:
        remove_leftovers(client, prefix)
        client.close()
