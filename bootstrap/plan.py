"""plan / apply / destroy: a plan is a printable value; apply runs its ordered, idempotent steps.

`diff` and `decide` are pure (tested without a server); `observe` and `apply` are the I/O shell.
Every AWS error leaves here as one line (resources/base.py `explain`): AccessDenied names the
missing action and the resource. On aws, `destroy` deletes only what carries the project's
tags: the planned resources that have them, and whatever else the tagging API finds with them.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from bootstrap.iam import Arns
from bootstrap.resources import handler_for
from bootstrap.resources.base import Handler, State, explain, missing
from bootstrap.resources.discovery import key_of_arn, tag_lookup_denied, tagged_arns
from bootstrap.resources.s3 import empty_bucket
from bootstrap.spec import KIND_ORDER, Ref, Resource, desired_resources, owned, resolve, tags
from common.aws import Clients, error_code
from common.config import AWS_DYNAMIC_PARTITIONING_MIN_INTERVAL_S, Settings, aws_buffering_refusals
from common.console import Console
from common.errors import TerminalError

T = TypeVar("T")
CREATE, UPDATE, NOOP = "create", "update", "no change"
CREDENTIAL_CODES = frozenset({"ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId",
                              "UnrecognizedClientException", "SignatureDoesNotMatch"})
# The services whose clients `make up` builds (loads the models of) while the emulator starts
# (common/aws.py Clients.preload). The plan also calls dynamodbstreams, firehose and pipes: their models
# load in the plan's threads, which measured faster than adding them here (3.7 s vs 3.8 s per up).
PRELOADED_SERVICES = ("sts", "s3", "dynamodb", "kinesis", "iam", "logs", "lambda", "glue", "sqs", "athena")
OBSERVERS = 8  # threads observing resources at once (each waits on the network, not on the CPU)
# Kinds that refer to no other resource (a role's policy names ARNs as text, which IAM does not check), first in
# KIND_ORDER: apply creates or updates them at once.
INDEPENDENT_KINDS = frozenset({"s3_bucket", "dynamodb_table", "kinesis_stream", "iam_role", "log_group"})
NOT_FOUND_CODES = ("ResourceNotFoundException", "NotFoundException", "EntityNotFoundException", "NoSuchEntity",
                   "NoSuchBucket")


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
    notes: tuple[str, ...] = field(default=())  # aws: resources that exist without the project's tags

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
    """What AWS would refuse in these settings, each named a local-only deviation.

    Config refuses every such value on every target (common/config.py `validate`), except the buffering
    hints that LOCAL_FAST_BUFFERS=1 allows on the emulated targets so a demo is quick: they reach the plan,
    which says, one line each, that they run here only and what TARGET=aws does instead.
    """
    if not settings.local_fast:
        return ()
    defaults = {"BUFFER_INTERVAL_S": settings.buffer_interval_s == -1}
    lines = []
    for refusal in aws_buffering_refusals(settings):
        name = refusal.split("=", 1)[0]
        instead = (f"TARGET=aws uses {AWS_DYNAMIC_PARTITIONING_MIN_INTERVAL_S}" if defaults.get(name)
                   else "TARGET=aws refuses it")
        lines.append(f"{refusal}: a local-only deviation (LOCAL_FAST_BUFFERS=1); {instead}")
    return tuple(lines)


def account_of(clients: Clients) -> str:
    """The account from STS, with one clear line when there are no usable credentials."""
    try:
        return clients.account_id
    except NoCredentialsError as exc:
        raise TerminalError(
            "no AWS credentials found; set AWS_PROFILE (or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) and AWS_REGION"
        ) from exc
    except ClientError as exc:
        if error_code(exc) in CREDENTIAL_CODES:
            raise TerminalError(
                f"AWS rejected the credentials ({error_code(exc)}); refresh them (e.g. `aws sso login`)"
            ) from exc
        raise
    except BotoCoreError as exc:
        raise TerminalError(f"cannot reach AWS STS: {exc}") from exc


def guarded(clients: Clients, res: Resource, call: Callable[[], T]) -> T:
    """Run one handler step; an AWS error becomes one line naming the action and the resource."""
    try:
        return call()
    except ClientError as exc:
        raise _explained(clients, res, exc) from exc


@dataclass(frozen=True)
class _Observed:
    current: State | None
    facts: dict[str, Any]
    foreign: bool  # exists without the project's tags (aws only)


def build_plan(clients: Clients, settings: Settings) -> Plan:
    """Observe every resource and decide what apply would do.

    The observations run in threads (a describe call or three per resource: the plan costs about one call's
    time per Ref level instead of one per resource); a resource whose parameters refer to another's facts
    (the pipe's source: the table's stream ARN) is observed after the others, with their facts.
    """
    warnings = aws_warnings(settings)
    account = account_of(clients)
    desired = desired_resources(settings, account)

    def observe(res: Resource, facts: dict[str, Any]) -> _Observed:
        handler = handler_for(res.kind, res.local_runner is not None)
        resolved = _resolve_known(res, facts)
        current = guarded(clients, res, lambda: handler.observe(clients, resolved))
        if current is None:
            return _Observed(None, {}, False)
        found = guarded(clients, res, lambda: handler.facts(clients, resolved))
        resolved = _resolve_known(res, {**facts, **found})
        foreign = not settings.emulated and not _owned(clients, handler, resolved)
        return _Observed(current, found, foreign)

    independent = [res for res in desired if not _refs(res.params)]
    with ThreadPoolExecutor(max_workers=OBSERVERS, thread_name_prefix="plan") as pool:
        futures = {res.key: pool.submit(observe, res, {}) for res in independent}
        observed = {key: future.result() for key, future in futures.items()}  # the first error, in plan order
    facts: dict[str, Any] = {}
    for res in independent:
        facts.update(observed[res.key].facts)
    for res in desired:
        if res.key not in observed:  # in plan order, each with every fact known before it
            observed[res.key] = observe(res, facts)
            facts.update(observed[res.key].facts)
    changes = []
    notes = []
    for res in desired:
        seen = observed[res.key]
        handler = handler_for(res.kind, res.local_runner is not None)
        resolved = _resolve_known(res, facts)
        if seen.foreign:
            notes.append(f"{res.kind} {res.name} already exists without the tags {_tag_text(settings)}: "
                         "this bootstrap did not create it; check the name before you confirm")
        change = decide(resolved, handler.desired(resolved), seen.current)
        changes.append(Change(res, change.action, change.fields))  # keep Refs for apply
    return Plan(settings.target, settings.region, account, tuple(changes), warnings, tuple(notes))


def apply(clients: Clients, plan: Plan, console: Console) -> Plan:
    """Run the pending steps in order; values known only after a step flow into the next ones.

    The plan's leading resources of INDEPENDENT_KINDS (buckets, the table, the stream, the roles, the log
    groups) are applied at once, each in a thread, their lines printed in plan order; the rest one by one.
    """
    facts: dict[str, Any] = {}
    settling: list[tuple[Any, Resource]] = []
    lead = 0
    while lead < len(plan.changes) and plan.changes[lead].resource.kind in INDEPENDENT_KINDS:
        lead += 1
    with ThreadPoolExecutor(max_workers=OBSERVERS, thread_name_prefix="apply") as pool:
        steps = []
        for change in plan.changes[:lead]:
            lines: list[str] = []
            steps.append((pool.submit(_step, clients, change, {}, lines), lines))
        for future, lines in steps:  # in plan order: the lines of each, then its error if it failed
            exc = future.exception()
            for line in lines:
                console.step(line)
            if exc is not None:
                raise exc
            found, settle = future.result()
            facts.update(found)
            settling += settle
    for change in plan.changes[lead:]:
        found, settle = _step(clients, change, facts, console)
        facts.update(found)
        settling += settle
    for handler, res in settling:
        guarded(clients, res, lambda h=handler, r=res: h.wait_ready(clients, r))
    if plan.pending:
        console.ok(f"applied: {plan.summary()}")
    else:
        console.ok("no changes: every resource already matches the plan")
    return plan


def _step(clients: Clients, change: Change, facts: dict[str, Any],
          say: Console | list[str]) -> tuple[dict[str, Any], list[tuple[Any, Resource]]]:
    """Apply one change; its lines go to `say` (the console, or a list printed later). Returns its facts and,
    for a resource that becomes ready on its own, what to wait for once the other steps are done."""
    res = change.resource
    handler = handler_for(res.kind, res.local_runner is not None)
    res = Resource(res.kind, res.name, resolve(res.params, facts), res.local_runner)
    step = say.append if isinstance(say, list) else say.step
    settle: list[tuple[Any, Resource]] = []
    if change.action == CREATE:
        step(f"create {res.kind} {res.name} {change.served_by}".rstrip())
        if clients.settings.emulated and hasattr(handler, "start_create"):
            # A resource that is created, then becomes ready on its own (the Lambda: Pending, then Active) is
            # waited for once the other steps are done: on the emulated targets nothing uses it before apply
            # returns (its consumer is the local firehose runner, started after).
            guarded(clients, res, lambda: handler.start_create(clients, res))
            settle.append((handler, res))
        else:
            guarded(clients, res, lambda: handler.create(clients, res))
    elif change.action == UPDATE:
        current = guarded(clients, res, lambda: handler.observe(clients, res))
        fields = diff(handler.desired(res), current)
        if fields:
            step(f"update {res.kind} {res.name}: {', '.join(fields)}")
            guarded(clients, res, lambda: handler.update(clients, res, list(fields)))
    return guarded(clients, res, lambda: handler.facts(clients, res)), settle


def destroy(clients: Clients, settings: Settings, console: Console, empty_buckets: bool = False) -> int:
    """Delete what the plan manages, in reverse order; buckets must be empty or emptied on request.

    On aws only resources carrying the project's tags are deleted: the planned ones that have
    them (others are left alone, with a warning) and those the tagging API finds with them.
    """
    account = account_of(clients)
    planned = desired_resources(settings, account)
    found = [] if settings.emulated else _found_by_tag(clients, settings, planned, console)
    removed = 0
    for res, by_tag in reversed(_in_kind_order([(r, False) for r in planned] + [(r, True) for r in found])):
        handler = handler_for(res.kind, res.local_runner is not None)
        if not by_tag:
            if guarded(clients, res, lambda h=handler, r=res: h.observe(clients, _resolve_known(r, {}))) is None:
                continue
            if not settings.emulated and not _owned(clients, handler, res):
                console.warn(f"{res.kind} {res.name} lacks the tags {_tag_text(settings)}: "
                             "not created by this bootstrap, left alone")
                continue
        if res.kind == "s3_bucket" and empty_buckets:
            guarded(clients, res, lambda r=res: empty_bucket(clients, r.name))
        console.step(f"delete {res.kind} {res.name}" + (" (found by its tags)" if by_tag else ""))
        try:
            handler.delete(clients, res)
        except ClientError as exc:
            if error_code(exc) == "BucketNotEmpty":
                raise TerminalError(
                    f"bucket {res.name} is not empty; run destroy with --empty-buckets to delete its objects"
                ) from exc
            if by_tag and missing(exc, *NOT_FOUND_CODES):
                continue  # the tagging API lags deletions by a few minutes
            raise _explained(clients, res, exc) from exc
        removed += 1
    console.ok(f"destroyed {removed} resources" if removed else "nothing to destroy")
    return removed


def _owned(clients: Clients, handler: Handler, res: Resource) -> bool:
    """Does the live resource carry the project's tags (i.e. did this bootstrap create it)?"""
    return owned(guarded(clients, res, lambda: handler.tags(clients, res)), clients.settings)


def _explained(clients: Clients, res: Resource, exc: ClientError) -> Exception:
    arn = Arns.build(clients.settings, clients.account_id).of(res.kind, res.name)
    return explain(exc, res, arn)


def _found_by_tag(clients: Clients, settings: Settings, planned: list[Resource], console: Console) -> list[Resource]:
    """Resources with the project's tags that the current plan does not name (earlier names, say)."""
    try:
        arns = tagged_arns(clients, settings)
    except ClientError as exc:
        if not tag_lookup_denied(exc):
            raise
        console.warn("AccessDenied on tag:GetResources: only the planned resources are checked; "
                     "grant it to the deploying identity to find leftovers by tag")
        return []
    keys = {r.key for r in planned}
    found: dict[str, Resource] = {}
    for arn in arns:
        key = key_of_arn(arn)
        if key is None:
            console.warn(f"{arn} carries the tags {_tag_text(settings)} but is no kind this bootstrap manages: "
                         "left alone")
            continue
        res = Resource(key[0], key[1], {})
        if res.key not in keys:
            found.setdefault(res.key, res)
    return list(found.values())


def _in_kind_order(items: list[tuple[Resource, bool]]) -> list[tuple[Resource, bool]]:
    """Creation order by kind (stable: the plan's own order within a kind)."""
    return sorted(items, key=lambda item: KIND_ORDER.index(item[0].kind))


def _tag_text(settings: Settings) -> str:
    return ", ".join(f"{k}={v}" for k, v in tags(settings).items())


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
