"""`make deploy-aws` / `make destroy-aws`: the same bootstrap, against real AWS, with a human in the loop.

deploy: who (the caller from STS), where (account, region), what (the plan, with names) ->
confirm unless auto-approved -> apply. destroy: the same confirmation, then delete only what
carries the project's tags (plan.destroy), emptying the buckets only when asked to.
On aws the managed Pipe, Firehose and Glue crawler are the data plane: nothing here imports
the local runners or reads an emulator endpoint.
https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bootstrap.plan import NOOP, Plan, account_of, apply, build_plan, destroy
from common.aws import Clients
from common.config import Settings
from common.console import Console
from common.errors import ConfigError, TerminalError

Confirm = Callable[[str], bool]
CANCELLED = "cancelled at the confirmation prompt; nothing was changed"


@dataclass(frozen=True)
class Identity:
    account: str
    arn: str
    region: str


def require_aws(settings: Settings) -> None:
    if settings.emulated:
        raise ConfigError(f"TARGET={settings.target}: deploy-aws and destroy-aws need TARGET=aws")


def caller_identity(clients: Clients) -> Identity:
    """Who is about to deploy, and where (one clear line when the credentials are missing)."""
    account = account_of(clients)
    arn = clients.client("sts").get_caller_identity()["Arn"]
    return Identity(account, arn, clients.settings.region)


def plan_lines(plan: Plan, identity: Identity) -> list[str]:
    """Pure: the plan as plain lines, the header naming the account, the caller and the region."""
    lines = [f"target aws: account {identity.account} as {identity.arn}, region {identity.region}"]
    width = max((len(c.resource.kind) for c in plan.changes), default=0)
    for change in plan.changes:
        if change.action == NOOP:
            continue
        detail = f"  ({', '.join(change.fields)})" if change.action == "update" else ""
        lines.append(f"  {change.action:<7} {change.resource.kind:<{width}}  {change.resource.name}{detail}")
    lines.append(plan.summary())
    return lines


def confirm_question(plan: Plan, identity: Identity) -> str:
    return (f"apply {len(plan.pending)} change(s) to AWS account {identity.account} in {identity.region} "
            f"as {identity.arn}?")


def deploy(
    clients: Clients, settings: Settings, console: Console, confirm: Confirm, auto_approve: bool = False,
    show_plan: Callable[[Plan], None] | None = None,
) -> Plan:
    """Plan, show, confirm (unless auto-approved), apply. Returns the plan that was applied."""
    require_aws(settings)
    identity = caller_identity(clients)
    plan = build_plan(clients, settings)
    if show_plan is not None:
        show_plan(plan)
        console.info(f"account {identity.account} as {identity.arn}, region {identity.region}")
    else:
        for line in plan_lines(plan, identity):
            console.info(line)
    for note in plan.notes:
        console.warn(note)
    if not plan.pending:
        console.ok("no changes: every resource already matches the plan")
        return plan
    if not auto_approve and not confirm(confirm_question(plan, identity)):
        raise TerminalError(CANCELLED)
    return apply(clients, plan, console)


def teardown(
    clients: Clients, settings: Settings, console: Console, confirm: Confirm, auto_approve: bool = False,
    empty_buckets: bool = False,
) -> int:
    """Confirm (unless auto-approved), then delete every resource that carries the project's tags."""
    require_aws(settings)
    identity = caller_identity(clients)
    what = "everything tagged project=" + settings.project + (", bucket contents included" if empty_buckets else "")
    question = f"destroy {what} in AWS account {identity.account} ({identity.region}) as {identity.arn}?"
    if not auto_approve and not confirm(question):
        raise TerminalError(CANCELLED)
    return destroy(clients, settings, console, empty_buckets=empty_buckets)
