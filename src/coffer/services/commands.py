"""The command queue between the control plane and agents.

A command is stored (payload sealed) before it is sent, delivered at least once, and
completed exactly once: the first result wins, later duplicates are ignored. Waiting for a
result polls the database, so a server restarted mid-wait picks up where it left off.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from coffer.clock import utcnow
from coffer.contracts.agent_v1 import AgentCommand, CommandKind, CommandResult
from coffer.db.models import Command
from coffer.errors import AgentUnavailable, error_from_code
from coffer.services.runtime import Runtime

PENDING, SENT, DONE, FAILED = "pending", "sent", "done", "failed"


class CommandBus:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def submit(
        self,
        *,
        command_id: str,
        host_id: str,
        instance_id: str | None,
        kind: CommandKind,
        payload: dict[str, Any],
    ) -> None:
        """Queue a command; idempotent by ``command_id`` (a re-submit is a no-op)."""
        sealed = self._rt.sealer.seal(json.dumps(payload).encode())
        with self._rt.sessions.begin() as s:
            if s.get(Command, command_id) is not None:
                return
            s.add(
                Command(
                    id=command_id,
                    host_id=host_id,
                    instance_id=instance_id,
                    kind=kind.value,
                    payload_sealed=sealed,
                    state=PENDING,
                    attempts=0,
                    created=utcnow(),
                )
            )
            try:
                s.flush()
            except IntegrityError:
                s.rollback()
                return
        self._rt.wakeup.notify(host_id)

    def outcome(self, command_id: str) -> dict[str, Any] | None:
        """The result if the command finished (raising its error if it failed), else None."""
        with self._rt.sessions() as s:
            cmd = s.get(Command, command_id)
            if cmd is None:
                raise KeyError(command_id)
            if cmd.state == DONE:
                sealed = cmd.result_sealed
                return json.loads(self._rt.sealer.open(sealed)) if sealed else {}
            if cmd.state == FAILED:
                raise error_from_code(cmd.error_code or "EngineError", cmd.error_message or "")
        return None

    def wait(self, command_id: str, deadline: datetime) -> dict[str, Any]:
        """Block until the command finishes or ``deadline`` passes (AgentUnavailable)."""
        while True:
            result = self.outcome(command_id)
            if result is not None:
                return result
            if utcnow() >= deadline:
                raise AgentUnavailable(f"no agent finished {command_id} before its deadline")
            time.sleep(0.05)

    async def wait_async(self, command_id: str, timeout_s: float) -> dict[str, Any]:
        end = time.monotonic() + timeout_s
        while True:
            result = await asyncio.to_thread(self.outcome, command_id)
            if result is not None:
                return result
            if time.monotonic() >= end:
                raise AgentUnavailable(
                    "the database host's agent did not answer in time; try again later"
                )
            await asyncio.sleep(0.03)

    def take_deliverable(self, host_id: str, running: list[str]) -> list[AgentCommand]:
        """Commands to send now: pending ones, and sent ones the agent no longer runs."""
        running_ids = set(running)
        out: list[AgentCommand] = []
        with self._rt.sessions.begin() as s:
            rows = s.scalars(
                select(Command)
                .where(Command.host_id == host_id, Command.state.in_((PENDING, SENT)))
                .order_by(Command.created)
            ).all()
            for cmd in rows:
                if cmd.state == SENT and cmd.id in running_ids:
                    continue
                # compare-and-set: a result recorded since the read is never overwritten
                claimed = s.execute(
                    update(Command)
                    .where(
                        Command.id == cmd.id,
                        Command.state == cmd.state,
                        Command.attempts == cmd.attempts,
                    )
                    .values(state=SENT, sent_at=utcnow(), attempts=cmd.attempts + 1)
                    .execution_options(synchronize_session=False)
                )
                if claimed.rowcount != 1:  # type: ignore[attr-defined]
                    continue
                payload = json.loads(self._rt.sealer.open(cmd.payload_sealed))
                out.append(
                    AgentCommand(
                        id=cmd.id,
                        kind=CommandKind(cmd.kind),
                        instance_id=cmd.instance_id,
                        payload=payload,
                    )
                )
        return out

    def complete(self, host_id: str, command_id: str, result: CommandResult) -> bool:
        """Record a result; returns False for unknown or already finished commands."""
        values: dict[str, Any] = {
            "state": DONE if result.ok else FAILED,
            "finished_at": utcnow(),
            "seconds": result.seconds,
        }
        if result.ok:
            values["result_sealed"] = self._rt.sealer.seal(json.dumps(result.result).encode())
        else:
            values.update(error_code=result.error_code, error_message=result.error_message)
        with self._rt.sessions.begin() as s:
            # compare-and-set: the first result wins, even against a concurrent delivery
            recorded = s.execute(
                update(Command)
                .where(
                    Command.id == command_id,
                    Command.host_id == host_id,
                    Command.state.in_((PENDING, SENT)),
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            return bool(recorded.rowcount == 1)  # type: ignore[attr-defined]
