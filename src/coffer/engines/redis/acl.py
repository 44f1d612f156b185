"""The ACL rules Coffer gives Redis users, and the ACL file it seeds (pure, no I/O).

Users live in the ACL file in the data directory (``aclfile``); the admin API changes
them with ``ACL SETUSER``/``ACL DELUSER`` and persists them with ``ACL SAVE``, so they
survive restarts. Passwords are sent and stored only as SHA-256 hashes (``#<hex>``):
clear text never reaches the server, its ACL file or its logs.

Permission sets
    tenant users  ``+@all -@admin -migrate`` on every key and channel: all data commands
                  (scripts, FLUSHALL, KEYS, SELECT included), none of CONFIG, ACL (beyond
                  WHOAMI/CAT/GENPASS), SHUTDOWN, DEBUG, MODULE, MONITOR, CLIENT LIST/KILL,
                  SLOWLOG, REPLICAOF, SYNC, BGSAVE...; MIGRATE would open connections to
                  any host from the database host, so it is closed too.
    root          the tenant set plus the operational ``@admin`` commands that cannot
                  break Coffer: BGSAVE, SAVE, BGREWRITEAOF, LASTSAVE, ROLE, MONITOR,
                  SLOWLOG, LATENCY, CLIENT (all subcommands), CONFIG RESETSTAT. Still
                  closed: CONFIG GET/SET/REWRITE (settings belong to configuration
                  groups, and CONFIG GET would show replication credentials), ACL changes
                  (Coffer's admin user), SHUTDOWN (the agent supervises the process),
                  MODULE, DEBUG, replication and cluster administration, MIGRATE.
    coffer-admin  everything. The agent uses it over the private unix socket; its random
                  password lives in a root-only file outside the data directory. (Redis
                  ACLs cannot tie a user to the socket: the password is the only guard.)
    replicator    ``coffer_replicator`` (``open_source``): what a replica sends its
                  upstream — PSYNC, REPLCONF and PING (AUTH is open to every user) — and
                  nothing else: no keys, no channels, no other command.
    default       disabled (``off``, no password, no commands): every connection must
                  authenticate.
"""

from __future__ import annotations

import hashlib

from coffer.engines.redis.catalog import ADMIN_USER, DEFAULT_USER

__all__ = [
    "ADMIN_RULES",
    "DEFAULT_LINE",
    "REPLICATION_COMMANDS",
    "ROOT_COMMANDS",
    "TENANT_COMMANDS",
    "acl_file_with_coffer_users",
    "admin_line",
    "parse_user_line",
    "password_hash",
    "password_rules",
    "replication_rules",
    "root_rules",
    "tenant_rules",
]

TENANT_COMMANDS: tuple[str, ...] = ("+@all", "-@admin", "-migrate")
ROOT_COMMANDS: tuple[str, ...] = (
    *TENANT_COMMANDS,
    "+bgsave",
    "+bgrewriteaof",
    "+save",
    "+lastsave",
    "+role",
    "+monitor",
    "+slowlog",
    "+latency",
    "+client",
    "+config|resetstat",
)
#: the commands a Redis 7.0 replica sends its upstream after AUTH
REPLICATION_COMMANDS: tuple[str, ...] = ("+psync", "+replconf", "+ping")
_ALL_KEYS_AND_CHANNELS = ("~*", "&*")
#: the default user as Redis 7.0 writes it after ``ACL SETUSER default reset``.
DEFAULT_LINE = f"user {DEFAULT_USER} off sanitize-payload resetchannels -@all"


def password_hash(password: str) -> str:
    """The hex SHA-256 of ``password``: what Redis stores, given as ``#<hex>``."""
    return hashlib.sha256(password.encode("utf-8")).hexdigest()


def tenant_rules(password: str) -> list[str]:
    """``ACL SETUSER`` rules (after the name) of a tenant user with ``password``."""
    return ["reset", "on", f"#{password_hash(password)}", *_ALL_KEYS_AND_CHANNELS, *TENANT_COMMANDS]


def root_rules(password: str) -> list[str]:
    """``ACL SETUSER`` rules (after the name) of the root user with ``password``."""
    return ["reset", "on", f"#{password_hash(password)}", *_ALL_KEYS_AND_CHANNELS, *ROOT_COMMANDS]


def replication_rules(password: str) -> list[str]:
    """``ACL SETUSER`` rules (after the name) of the replication user with ``password``
    alone (``reset`` leaves no key, channel or other command)."""
    return ["reset", "on", f"#{password_hash(password)}", *REPLICATION_COMMANDS]


def password_rules(password: str) -> list[str]:
    """``ACL SETUSER`` rules replacing a user's passwords with ``password`` alone."""
    return ["resetpass", f"#{password_hash(password)}"]


#: the admin user's rules, after its password, as ``ACL LIST`` shows them.
ADMIN_RULES: tuple[str, ...] = ("on", *_ALL_KEYS_AND_CHANNELS, "+@all")


def admin_line(password: str) -> str:
    """The ACL file line of Coffer's admin user."""
    return f"user {ADMIN_USER} on #{password_hash(password)} ~* &* +@all"


def parse_user_line(line: str) -> tuple[str, list[str]] | None:
    """``(name, rules)`` of an ACL file / ``ACL LIST`` line, or None if it is no user line."""
    tokens = line.split()
    if len(tokens) < 2 or tokens[0] != "user":
        return None
    return tokens[1], tokens[2:]


def acl_file_with_coffer_users(text: str, admin_password: str) -> str:
    """ACL file ``text`` with the default user disabled and Coffer's admin user holding
    ``admin_password``; other users' lines are kept in order.

    Returns ``text`` unchanged when both are already so (as Redis itself wrote them), so
    callers can skip writing a file the running server may be saving.
    """
    wanted_admin = {"on", f"#{password_hash(admin_password)}", *ADMIN_RULES}
    kept: list[str] = []
    seen: set[str] = set()
    for line in text.splitlines():
        parsed = parse_user_line(line)
        if parsed is None or parsed[0] in seen:
            continue
        name, rules = parsed
        seen.add(name)
        if name == ADMIN_USER and set(rules) != wanted_admin:
            line = admin_line(admin_password)
        elif name == DEFAULT_USER and "off" not in rules:
            line = DEFAULT_LINE
        kept.append(line)
    if DEFAULT_USER not in seen:
        kept.insert(0, DEFAULT_LINE)
    if ADMIN_USER not in seen:
        kept.insert(0, admin_line(admin_password))
    rebuilt = "".join(f"{line}\n" for line in kept)
    return text if rebuilt == text else rebuilt
