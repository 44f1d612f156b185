"""``coffer backup ...``: take, list, show, delete and restore backups of instances.

A backup is named by its id or, when unique in the project, by its name. Restoring
creates a new instance from a backup and reports it as ``coffer instance create`` does.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from coffer.cli.instances import InstanceArg, instance_fields, print_ready, resolve_instance
from coffer.cli.output import JsonOption, emit_json, print_fields, print_note, print_table
from coffer.cli.state import CliState, current
from coffer.cli.waiting import TimeoutOption, WaitOption, wait_for
from coffer.client import JSONObject, WaitUntil

__all__ = ["app", "format_bytes"]

app = typer.Typer(help="Take, list, delete and restore backups.", no_args_is_help=True)

BackupArg = Annotated[str, typer.Argument(metavar="BACKUP", help="Backup id or name.")]
LIST_COLUMNS = ("ID", "Name", "Instance", "Datastore", "Version", "Status", "Parent", "Size")
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")
_GIB = 1024**3


def format_bytes(count: float) -> str:
    """``count`` bytes for people: ``512 B``, ``1.5 MiB``."""
    value = float(count)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _label(view: JSONObject) -> str:
    return f"{view.get('name') or view.get('id')} ({view.get('id')})"


def _size(view: JSONObject) -> str | None:
    """The stored (compressed, encrypted) size. The view gives it in GB to six decimals,
    about a KiB, so anything smaller shows as ``< 1 KiB``."""
    size = view.get("size")
    if not isinstance(size, int | float):
        return None
    return format_bytes(float(size) * _GIB) if size * _GIB >= 1024 else "< 1 KiB"


def _streamed(view: JSONObject) -> str | None:
    progress = view.get("progress_bytes")
    return format_bytes(progress) if isinstance(progress, int | float) else None


def backup_fields(view: JSONObject) -> list[tuple[str, Any]]:
    """The rows of ``backup show``."""
    datastore = view.get("datastore") or {}
    raw = view.get("raw_size")
    fields: list[tuple[str, Any]] = [
        ("id", view.get("id")),
        ("name", view.get("name")),
        ("description", view.get("description")),
        ("status", view.get("status")),
        ("instance_id", view.get("instance_id")),
        ("parent_id", view.get("parent_id")),
        ("datastore", datastore.get("type")),
        ("datastore_version", datastore.get("version")),
        ("size", _size(view)),
        ("raw_size", format_bytes(raw) if isinstance(raw, int | float) else None),
        ("checksum", view.get("checksum")),
        ("location", view.get("locationRef")),
    ]
    if view.get("progress_bytes") is not None:
        fields.append(("streamed", _streamed(view)))
    checked = view.get("verification") or {}
    if checked.get("status"):
        fields.append(("verification", f"{checked['status']} {checked.get('verified_at') or ''}"))
        fields.append(("verification_detail", checked.get("detail")))
    fields += [("created", view.get("created")), ("updated", view.get("updated"))]
    if view.get("fail_reason"):
        fields.append(("fail_reason", view.get("fail_reason")))
    return fields


def _list_row(view: JSONObject) -> tuple[Any, ...]:
    datastore = view.get("datastore") or {}
    return (
        view.get("id"),
        view.get("name"),
        view.get("instance_id"),
        datastore.get("type"),
        datastore.get("version"),
        view.get("status"),
        view.get("parent_id"),
        _size(view),
    )


def _print_backup(state: CliState, view: JSONObject) -> None:
    if state.json_output:
        emit_json({"backup": view})
    else:
        print_fields(state, backup_fields(view))


def _wait_completed(state: CliState, view: JSONObject, *, timeout: float) -> JSONObject:
    """Wait with a spinner on stderr (status, bytes streamed, seconds) until the backup is
    COMPLETED (its instance is free again by then). Failures raise the client's wait
    errors."""
    label = f"backup {_label(view)}"
    with state.err.status(Text(f"{label}: waiting"), spinner="dots") as status:

        def show(seen: JSONObject, elapsed: float) -> None:
            streamed = _streamed(seen)
            detail = f", {streamed} streamed" if streamed else ""
            status.update(Text(f"{label}: {seen.get('status')}{detail}  {elapsed:.0f}s"))

        return state.client().wait_for_backup(
            str(view["id"]),
            timeout=timeout,
            interval=state.hooks.poll_interval,
            on_progress=show,
        )


@app.command("create")
def create(
    ctx: typer.Context,
    instance: InstanceArg,
    name: Annotated[str, typer.Argument(help="Name of the new backup.")],
    description: Annotated[str | None, typer.Option(help="A description to keep.")] = None,
    parent: Annotated[
        str | None,
        typer.Option(metavar="BACKUP", help="Make an incremental on this backup (id or name)."),
    ] = None,
    incremental: Annotated[
        bool,
        typer.Option("--incremental", help="Make an incremental on the instance's latest backup."),
    ] = False,
    wait: WaitOption = False,
    timeout: TimeoutOption = 3600.0,
    json_output: JsonOption = False,
) -> None:
    """Back up an instance; with --wait, show progress and then the finished backup."""
    if parent is not None and incremental:
        raise typer.BadParameter(
            "give --parent BACKUP or --incremental, not both", param_hint="--parent"
        )
    state = current(ctx, json_output=json_output)
    client = state.client()
    instance_id = str(resolve_instance(state, instance)["id"])
    parent_id = str(client.find_backup(parent)["id"]) if parent is not None else None
    view = client.create_backup(
        instance_id, name, description=description, parent_id=parent_id, incremental=incremental
    )
    if not wait:
        _print_backup(state, view)
        print_note(state, f"follow it with: coffer backup show {view.get('id')}")
        return
    done = _wait_completed(state, view, timeout=timeout)
    if state.json_output:
        emit_json({"backup": done})
    else:
        print_table(state, LIST_COLUMNS, [_list_row(done)])


@app.command("list")
def list_(
    ctx: typer.Context,
    instance: Annotated[
        str | None,
        typer.Option(metavar="INSTANCE", help="Only this instance's backups (id or name)."),
    ] = None,
    datastore: Annotated[
        str | None, typer.Option(help="Only backups of this datastore (name or id).")
    ] = None,
    all_projects: Annotated[
        bool, typer.Option("--all-projects", help="Admin: every project's backups.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """List backups, newest first."""
    state = current(ctx, json_output=json_output)
    instance_id = str(resolve_instance(state, instance)["id"]) if instance is not None else None
    backups = state.client().list_backups(
        instance=instance_id, datastore=datastore, all_projects=all_projects
    )
    if state.json_output:
        emit_json({"backups": backups})
    else:
        print_table(state, LIST_COLUMNS, [_list_row(b) for b in backups])


@app.command("show")
def show(ctx: typer.Context, backup: BackupArg, json_output: JsonOption = False) -> None:
    """Show one backup: status, sizes, checksum, parent, and why it failed if it did."""
    state = current(ctx, json_output=json_output)
    _print_backup(state, state.client().find_backup(backup))


@app.command("delete")
def delete(
    ctx: typer.Context,
    backup: BackupArg,
    wait: WaitOption = False,
    timeout: TimeoutOption = 600.0,
) -> None:
    """Delete a backup and every incremental built on it."""
    state = current(ctx)
    client = state.client()
    view = client.find_backup(backup)
    backup_id = str(view["id"])
    client.delete_backup(backup_id)
    print_note(state, f"deleting backup {_label(view)} and any incrementals built on it")
    if wait:
        label = f"backup {_label(view)}"
        with state.err.status(Text(f"{label}: deleting"), spinner="dots"):
            client.wait_for_backup(
                backup_id,
                until=WaitUntil.DELETED,
                timeout=timeout,
                interval=state.hooks.poll_interval,
            )
        print_note(state, f"deleted {label}")


@app.command("restore")
def restore(
    ctx: typer.Context,
    backup: BackupArg,
    name: Annotated[str, typer.Argument(help="Name of the new instance.")],
    flavor: Annotated[str, typer.Option(help="Flavor id or name, e.g. small.")],
    size: Annotated[int, typer.Option(min=1, help="Volume size in GB.")],
    time: Annotated[
        str | None,
        typer.Option(
            help="Roll forward to this moment (ISO 8601, UTC unless it has an offset): "
            "point-in-time recovery, within the source's restorable window "
            "(coffer instance show)."
        ),
    ] = None,
    wait: WaitOption = False,
    timeout: TimeoutOption = 600.0,
    json_output: JsonOption = False,
) -> None:
    """Create an instance from a backup (rolled forward to --time if given); with
    --wait, print how to connect to it."""
    state = current(ctx, json_output=json_output)
    source = state.client().find_backup(backup)
    view = state.client().create_instance(
        name, flavor=flavor, volume_size=size, backup=str(source["id"]), restore_time=time
    )
    label = _label(view)
    if not wait:
        if state.json_output:
            emit_json({"instance": view})
        else:
            print_fields(state, instance_fields(view))
            print_note(state, f"restoring {_label(source)} into {label}")
            print_note(state, f"follow it with: coffer instance show {view.get('id')}")
        return
    ready = wait_for(state, str(view["id"]), until=WaitUntil.READY, timeout=timeout, label=label)
    print_ready(state, ready)


@app.command("verify")
def verify(ctx: typer.Context, backup: BackupArg) -> None:
    """Restore the backup into a throwaway instance and check it again; see the result
    with ``coffer backup show``."""
    state = current(ctx)
    found = state.client().find_backup(backup)
    state.client().verify_backup(str(found["id"]))
    print_note(state, f"verifying {_label(found)}; see: coffer backup show {found.get('id')}")


schedules = typer.Typer(help="Automatic backups on cron schedules, with retention.")
app.add_typer(schedules, name="schedule", no_args_is_help=True)
SCHEDULE_COLUMNS = ("ID", "Name", "Instance", "Full", "Incremental", "Retention", "Last run")


def _schedule_row(view: JSONObject) -> tuple[Any, ...]:
    return (
        view.get("id"),
        view.get("name"),
        view.get("instance_id"),
        view.get("full"),
        view.get("incremental"),
        view.get("retention"),
        view.get("last_run"),
    )


@schedules.command("create")
def schedule_create(
    ctx: typer.Context,
    instance: InstanceArg,
    full: Annotated[
        str, typer.Option(help="Cron (UTC) of full backups, e.g. '0 3 * * *' (03:00 daily).")
    ],
    incremental: Annotated[
        str | None, typer.Option(help="Cron (UTC) of incremental backups, e.g. '0 * * * *'.")
    ] = None,
    retention: Annotated[str, typer.Option(help="Keep backups this long: 7d, 12h, ...")] = "7d",
    name: Annotated[str | None, typer.Option(help="A name for the schedule.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Back an instance up automatically."""
    state = current(ctx, json_output=json_output)
    instance_id = str(resolve_instance(state, instance)["id"])
    view = state.client().create_backup_schedule(
        instance_id, full=full, incremental=incremental, retention=retention, name=name
    )
    if state.json_output:
        emit_json({"backup_schedule": view})
    else:
        print_table(state, SCHEDULE_COLUMNS, [_schedule_row(view)])


@schedules.command("list")
def schedule_list(
    ctx: typer.Context,
    instance: Annotated[str | None, typer.Option(help="Only this instance's (id or name).")] = None,
    json_output: JsonOption = False,
) -> None:
    """List backup schedules."""
    state = current(ctx, json_output=json_output)
    instance_id = str(resolve_instance(state, instance)["id"]) if instance else None
    found = state.client().list_backup_schedules(instance=instance_id)
    if state.json_output:
        emit_json({"backup_schedules": found})
    else:
        print_table(state, SCHEDULE_COLUMNS, [_schedule_row(v) for v in found])


@schedules.command("delete")
def schedule_delete(
    ctx: typer.Context,
    schedule: Annotated[str, typer.Argument(metavar="SCHEDULE", help="Schedule id.")],
) -> None:
    """Stop a schedule (the backups it took stay)."""
    state = current(ctx)
    state.client().delete_backup_schedule(schedule)
    print_note(state, f"backup schedule {schedule} deleted")
