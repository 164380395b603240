"""plan / apply / destroy: a plan is a printable value; apply runs its ordered, idempotent steps.

`diff` and `decide` are pure (tested without a server); `observe` and `apply` are the I/O shell.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from bootstrap.resources import handler_for
from bootstrap.resources.base import State
from bootstrap.resources.s3 import empty_bucket
from bootstrap.spec import Ref, Resource, desired_resources, resolve
from common.aws import Clients, error_code
from common.config import (
    AWS_DYNAMIC_PARTITIONING_MIN_BUFFER_MB,
    AWS_DYNAMIC_PARTITIONING_MIN_INTERVAL_S,
    Settings,
)
from common.console import Console
from common.errors import TerminalError

CREATE, UPDATE, NOOP = "create", "update", "no change"


@dataclass(frozen=True)
class Change:
    resource: Resource
    action: str
    fields: tuple[str, ...] = ()

    @property
    def served_by(self) -> str:
        if self.resource.local_runner:
            return f"served by the local {self.resource.local_runner}"
        return ""


@dataclass(frozen=True)
class Plan:
    target: str
    region: str
    account: str
    changes: tuple[Change, ...]
    warnings: tuple[str, ...] = field(default=())

    @property
    def pending(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.action != NOOP)

    def summary(self) -> str:
        counts = {a: sum(c.action == a for c in self.changes) for a in (CREATE, UPDATE, NOOP)}
        return f"{counts[CREATE]} to create, {counts[UPDATE]} to update, {counts[NOOP]} unchanged"


def diff(desired: State, current: State | None) -> tuple[str, ...]:
    """The managed fields whose live value differs from the spec (all of them if it is missing)."""
    if current is None:
        return tuple(desired)
    return tuple(k for k, v in desired.items() if _normal(v) != _normal(current.get(k)))


def decide(resource: Resource, desired: State, current: State | None) -> Change:
    if current is None:
        return Change(resource, CREATE, tuple(desired))
    changed = diff(desired, current)
    return Change(resource, UPDATE if changed else NOOP, changed)


def aws_warnings(settings: Settings) -> tuple[str, ...]:
    """What AWS would refuse in these settings, said up front (the emulated targets allow it)."""
    warnings = []
    if settings.buffer_size_mb < AWS_DYNAMIC_PARTITIONING_MIN_BUFFER_MB:
        warnings.append(
            f"BUFFER_SIZE_MB={settings.buffer_size_mb:g}: AWS refuses less than "
            f"{AWS_DYNAMIC_PARTITIONING_MIN_BUFFER_MB} MiB with dynamic partitioning"
        )
    if settings.flush_interval_s < AWS_DYNAMIC_PARTITIONING_MIN_INTERVAL_S:
        warnings.append(
            f"BUFFER_INTERVAL_S={settings.flush_interval_s}: AWS refuses less than "
            f"{AWS_DYNAMIC_PARTITIONING_MIN_INTERVAL_S} s with dynamic partitioning"
        )
    if warnings and not settings.emulated:
        raise TerminalError(warnings[0] + "; raise it for TARGET=aws")
    return tuple(warnings)


def build_plan(clients: Clients, settings: Settings) -> Plan:
    """Observe every resource and decide what apply would do."""
    warnings = aws_warnings(settings)
    facts: dict[str, Any] = {}
    changes = []
    for res in desired_resources(settings, clients.account_id):
        handler = handler_for(res.kind, res.local_runner is not None)
        resolved = _resolve_known(res, facts)
        current = handler.observe(clients, resolved)
        if current is not None:
            facts.update(handler.facts(clients, resolved))
            resolved = _resolve_known(res, facts)
        change = decide(resolved, handler.desired(resolved), current)
        changes.append(Change(res, change.action, change.fields))  # keep Refs for apply
    return Plan(settings.target, settings.region, clients.account_id, tuple(changes), warnings)


def apply(clients: Clients, plan: Plan, console: Console) -> Plan:
    """Run the pending steps in order; values known only after a step flow into the next ones."""
    facts: dict[str, Any] = {}
    for change in plan.changes:
        res = change.resource
        handler = handler_for(res.kind, res.local_runner is not None)
        res = Resource(res.kind, res.name, resolve(res.params, facts), res.local_runner)
        if change.action == CREATE:
            console.step(f"create {res.kind} {res.name} {change.served_by}".rstrip())
            handler.create(clients, res)
        elif change.action == UPDATE:
            current = handler.observe(clients, res)
            fields = diff(handler.desired(res), current)
            if fields:
                console.step(f"update {res.kind} {res.name}: {', '.join(fields)}")
                handler.update(clients, res, list(fields))
        facts.update(handler.facts(clients, res))
    if plan.pending:
        console.ok(f"applied: {plan.summary()}")
    else:
        console.ok("no changes: every resource already matches the plan")
    return plan


def destroy(clients: Clients, settings: Settings, console: Console, empty_buckets: bool = False) -> int:
    """Delete what the plan manages, in reverse order; buckets must be empty or emptied on request."""
    removed = 0
    for res in reversed(desired_resources(settings, clients.account_id)):
        handler = handler_for(res.kind, res.local_runner is not None)
        if handler.observe(clients, _resolve_known(res, {})) is None:
            continue
        if res.kind == "s3_bucket" and empty_buckets:
            empty_bucket(clients, res.name)
        console.step(f"delete {res.kind} {res.name}")
        try:
            handler.delete(clients, res)
        except ClientError as exc:
            if error_code(exc) == "BucketNotEmpty":
                raise TerminalError(
                    f"bucket {res.name} is not empty; run destroy with --empty-buckets to delete its objects"
                ) from exc
            raise
        removed += 1
    console.ok(f"destroyed {removed} resources" if removed else "nothing to destroy")
    return removed


def _resolve_known(res: Resource, facts: dict[str, Any]) -> Resource:
    """Resolve Refs we know; the rest print as '<...: known after apply>'."""
    known = {k: facts.get(k, str(Ref(k))) for k in _refs(res.params)}
    return Resource(res.kind, res.name, resolve(res.params, known), res.local_runner)


def _refs(value: Any) -> set[str]:
    if isinstance(value, Ref):
        return {value.key}
    if isinstance(value, dict):
        return set().union(*(_refs(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_refs(v) for v in value)) if value else set()
    return set()


def _normal(value: Any) -> Any:
    """Compare documents with tuples and lists alike (JSON round trips turn one into the other)."""
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normal(v) for v in value]
    return value
