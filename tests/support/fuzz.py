"""Schemathesis, driven as a library, against a running Coffer's ``/openapi.json``.

``Fuzzer.run`` generates cases for each chosen operation with Hypothesis (derandomized,
no example database: the same cases on every run), sends each to the server with the
given token and checks the reply: no server error, a documented status code, a
documented content type, a body and headers that match the schema. Each operation's
documented examples are sent first. Failures are collected, not raised, so one run
reports all of them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]

#: 501 (Trove's notImplemented: the datastore has no such operation) is an answer, not a
#: failure, where the operation documents it (``status_code_conformance`` checks that)
_CONFIG = {
    "checks": {"not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "501"]}},
    "generation": {"with-security-parameters": False},
}


@dataclass(frozen=True)
class Failure:
    operation: str
    mode: str
    titles: tuple[str, ...]
    detail: str


@dataclass
class Summary:
    cases: int = 0
    operations: set[str] = field(default_factory=set)
    statuses: Counter[int] = field(default_factory=Counter)
    #: statuses by operation, to see what each operation's cases reached
    reached: dict[str, Counter[int]] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)

    def text(self, title: str) -> str:
        codes = ", ".join(f"{code}: {n}" for code, n in sorted(self.statuses.items()))
        lines = [
            f"{title}: {self.cases} cases over {len(self.operations)} operations, "
            f"{len(self.failures)} failures; statuses {codes}"
        ]
        lines += [f"  {f.operation} [{f.mode}]: {'; '.join(f.titles)}" for f in self.failures]
        return "\n".join(lines)


@dataclass
class Fuzzer:
    base_url: str
    #: sent as X-Auth-Token; None sends none (the security scheme is not fuzzed: the
    #: token is either this one or missing)
    token: str | None
    #: fixed path parameters (``project_id``: the project the token belongs to)
    path_parameters: dict[str, str]

    def schema(self) -> Any:
        config = schemathesis.Config.from_dict(_CONFIG)
        return schemathesis.openapi.from_url(f"{self.base_url}/openapi.json", config=config)

    def run(
        self,
        *,
        keep: Callable[[str, str], bool],
        examples: dict[GenerationMode, int],
        summary: Summary,
    ) -> None:
        """Cases for each operation ``keep(method, path)`` accepts, ``examples[mode]`` at
        most per mode (negative ones only where there is typed input); tallied into
        ``summary``."""
        schema = self.schema()
        with requests.Session() as session:
            for result in schema.get_all_operations():
                op = result.ok()
                if not keep(op.method.upper(), op.path):
                    continue
                summary.operations.add(op.label)
                fixed = {k: v for k, v in self.path_parameters.items() if k in _path_names(op)}
                for example in schema.get_strategies_from_examples(op, path_parameters=fixed):
                    self._cases(op, "example", example, 1, session, summary)
                for mode, count in examples.items():
                    if mode is GenerationMode.NEGATIVE and not _typed_input(op):
                        continue
                    strategy = op.as_strategy(generation_mode=mode, path_parameters=fixed)
                    try:
                        self._cases(op, mode.value, strategy, count, session, summary)
                    except Unsatisfiable:
                        # nothing of this operation's input can be made invalid
                        assert mode is GenerationMode.NEGATIVE, f"{op.label}: no case to generate"

    def _cases(
        self,
        op: Any,
        kind: str,
        strategy: Any,
        count: int,
        session: requests.Session,
        summary: Summary,
    ) -> None:
        """Up to ``count`` cases of ``strategy``, each sent and checked."""
        seen: set[tuple[str, ...]] = set()

        @settings(
            max_examples=count,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            report_multiple_bugs=False,
        )
        @given(case=strategy)
        def one(case: Case) -> None:
            headers = {"X-Auth-Token": self.token} if self.token else {}
            response = case.call(base_url=self.base_url, session=session, headers=headers)
            summary.cases += 1
            summary.statuses[response.status_code] += 1
            summary.reached.setdefault(op.label, Counter())[response.status_code] += 1
            try:
                case.validate_response(response, checks=CHECKS, headers=headers)
            except FailureGroup as group:
                titles = tuple(sorted({f.title for f in group.exceptions}))
                if titles not in seen:  # one report per kind of failure and operation
                    seen.add(titles)
                    summary.failures.append(Failure(op.label, kind, titles, str(group)))

        one()


def _path_names(op: Any) -> Iterable[str]:
    return {p.name for p in op.path_parameters}


def _typed_input(op: Any) -> bool:
    """Whether ``op`` takes input that can be made invalid: a body, a query, a header.
    (A path parameter is any string: a "negative" one reaches the server as a string.)"""
    return bool(len(op.body) or len(op.query) or len(op.headers))
