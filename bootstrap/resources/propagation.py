"""IAM is eventually consistent: a role just created is not yet assumable by Pipes, Firehose or Lambda.

AWS: "changes that you make in IAM ... might take some time to become visible", and services
that validate the role at create time answer with a validation error meanwhile (Lambda:
InvalidParameterValueException, Firehose: InvalidArgumentException, Pipes: ValidationException,
Glue: InvalidInputException). So before a service uses a role we let a young role settle, and
a create that fails with that service's code is retried while the role is still young; an old
role failing the same way is a real error and is raised at once.
https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from botocore.exceptions import ClientError

from common.aws import Clients, error_code

T = TypeVar("T")

SETTLE_SECONDS = 10.0  # a role younger than this is given the rest of it before first use
RETRY_WINDOW_SECONDS = 120.0  # a create failing on a role younger than this is retried
RETRY_INTERVAL_SECONDS = 5.0


def role_name_of(role_arn: str) -> str:
    """arn:aws:iam::123456789012:role/path/name -> name."""
    return role_arn.rsplit("/", 1)[-1]


def role_age(clients: Clients, role_arn: str, now: datetime | None = None) -> float:
    """Seconds since the role was created (IAM's CreateDate)."""
    created: datetime = clients.iam.get_role(RoleName=role_name_of(role_arn))["Role"]["CreateDate"]
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return ((now or datetime.now(UTC)) - created).total_seconds()


def wait_for_role(
    clients: Clients, role_arn: str, sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> float:
    """Let a freshly created role settle before a service is asked to assume it; returns the wait.

    Emulators are consistent at once, so only the aws target waits.
    """
    if clients.settings.emulated:
        return 0.0
    age = role_age(clients, role_arn, now())
    wait = max(0.0, SETTLE_SECONDS - age)
    if wait:
        sleep(wait)
    return wait


def retry_while_role_propagates(
    call: Callable[[], T], clients: Clients, role_arn: str, codes: frozenset[str],
    sleep: Callable[[float], None] = time.sleep, now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> T:
    """Run `call`; while it fails with one of `codes` and the role is young, wait and try again."""
    while True:
        try:
            return call()
        except ClientError as exc:
            if error_code(exc) not in codes or role_age(clients, role_arn, now()) > RETRY_WINDOW_SECONDS:
                raise
            sleep(RETRY_INTERVAL_SECONDS)
