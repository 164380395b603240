"""What every resource handler offers; the plan and apply steps only ever talk to this."""

from __future__ import annotations

from typing import Any, Protocol

from botocore.exceptions import ClientError

from bootstrap.spec import Resource
from common.aws import Clients, error_code

State = dict[str, Any]


class Handler(Protocol):
    def desired(self, res: Resource) -> State:
        """The managed fields as the spec wants them."""

    def observe(self, clients: Clients, res: Resource) -> State | None:
        """The managed fields as they are now; None when the resource does not exist."""

    def facts(self, clients: Clients, res: Resource) -> dict[str, Any]:
        """Values later resources refer to (e.g. the table's stream ARN)."""

    def create(self, clients: Clients, res: Resource) -> None: ...

    def update(self, clients: Clients, res: Resource, changed: list[str]) -> None: ...

    def delete(self, clients: Clients, res: Resource) -> None: ...


class NoFacts:
    def facts(self, clients: Clients, res: Resource) -> dict[str, Any]:
        return {}


def missing(exc: ClientError, *codes: str) -> bool:
    """True when the error says the thing is not there (each API spells it differently)."""
    return error_code(exc) in codes or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404
