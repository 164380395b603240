"""IAM roles: a trust policy for one service and one inline least-privilege policy.

https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_create_for-service.html
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from botocore.exceptions import ClientError

from bootstrap.resources.base import NoFacts, State, missing
from bootstrap.spec import Resource
from common.aws import Clients


def _doc(value: Any) -> Any:
    """IAM returns documents URL-encoded on the wire; boto3 usually decodes them, emulators may not."""
    if isinstance(value, str):
        return json.loads(unquote(value))
    return value


class Role(NoFacts):
    def desired(self, res: Resource) -> State:
        p = res.params
        return {"Trust": p["AssumeRolePolicyDocument"], "Policy": p["PolicyDocument"]}

    def observe(self, clients: Clients, res: Resource) -> State | None:
        try:
            role = clients.iam.get_role(RoleName=res.name)["Role"]
        except ClientError as exc:
            if missing(exc, "NoSuchEntity"):
                return None
            raise
        try:
            policy = _doc(
                clients.iam.get_role_policy(RoleName=res.name, PolicyName=res.params["PolicyName"])["PolicyDocument"]
            )
        except ClientError as exc:
            if not missing(exc, "NoSuchEntity"):
                raise
            policy = None
        return {"Trust": _doc(role["AssumeRolePolicyDocument"]), "Policy": policy}

    def create(self, clients: Clients, res: Resource) -> None:
        p = res.params
        clients.iam.create_role(
            RoleName=res.name,
            AssumeRolePolicyDocument=json.dumps(p["AssumeRolePolicyDocument"]),
            Tags=[{"Key": k, "Value": v} for k, v in p["Tags"].items()],
        )
        self.update(clients, res, ["Policy"])

    def update(self, clients: Clients, res: Resource, changed: list[str]) -> None:
        p = res.params
        if "Trust" in changed:
            clients.iam.update_assume_role_policy(
                RoleName=res.name, PolicyDocument=json.dumps(p["AssumeRolePolicyDocument"])
            )
        if "Policy" in changed:
            clients.iam.put_role_policy(
                RoleName=res.name, PolicyName=p["PolicyName"], PolicyDocument=json.dumps(p["PolicyDocument"])
            )

    def tags(self, clients: Clients, res: Resource) -> dict[str, str]:
        return {t["Key"]: t["Value"] for t in clients.iam.list_role_tags(RoleName=res.name).get("Tags", [])}

    def delete(self, clients: Clients, res: Resource) -> None:
        """IAM deletes only a bare role: its inline and attached policies go first, whatever their names."""
        iam = clients.iam
        for page in iam.get_paginator("list_role_policies").paginate(RoleName=res.name):
            for name in page["PolicyNames"]:
                iam.delete_role_policy(RoleName=res.name, PolicyName=name)
        for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=res.name):
            for attached in page["AttachedPolicies"]:
                iam.detach_role_policy(RoleName=res.name, PolicyArn=attached["PolicyArn"])
        iam.delete_role(RoleName=res.name)
