"""The transform Lambda, zipped from transform/ (standard library only, so the zip is the code).

The zip is deterministic (fixed timestamps, sorted names): the same source gives the same
CodeSha256, which is how `plan` knows whether the code changed.
https://docs.aws.amazon.com/lambda/latest/dg/python-package.html
"""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from functools import cache
from pathlib import Path

from botocore.exceptions import ClientError

from bootstrap.resources.base import NoFacts, State, missing
from bootstrap.resources.propagation import retry_while_role_propagates, wait_for_role
from bootstrap.spec import Resource
from common.aws import Clients, wait_until
from common.config import ROOT

TRANSFORM_DIR = ROOT / "transform"
CONFIG_FIELDS = ("Runtime", "Handler", "Role", "Timeout", "MemorySize")
ROLE_NOT_READY = frozenset({"InvalidParameterValueException"})  # "The role ... cannot be assumed by Lambda"


@cache
def build_zip(source: Path = TRANSFORM_DIR) -> bytes:
    """Zip every module of transform/ at the archive root, byte-for-byte reproducible."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(source.glob("*.py")):
            info = zipfile.ZipInfo(path.name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    return buffer.getvalue()


def code_sha256(code: bytes) -> str:
    """Lambda's CodeSha256: base64 of the SHA-256 digest of the zip."""
    return base64.b64encode(hashlib.sha256(code).digest()).decode()


class Function(NoFacts):
    def desired(self, res: Resource) -> State:
        state = {k: res.params[k] for k in CONFIG_FIELDS}
        state["CodeSha256"] = code_sha256(build_zip())
        return state

    def observe(self, clients: Clients, res: Resource) -> State | None:
        try:
            conf = clients.client("lambda").get_function_configuration(FunctionName=res.name)
        except ClientError as exc:
            if missing(exc, "ResourceNotFoundException"):
                return None
            raise
        return {k: conf.get(k) for k in (*CONFIG_FIELDS, "CodeSha256")}

    def _wait_ready(self, clients: Clients, name: str) -> None:
        def ready() -> bool:
            conf = clients.client("lambda").get_function_configuration(FunctionName=name)
            active = conf.get("State", "Active") == "Active"
            return active and conf.get("LastUpdateStatus", "Successful") != "InProgress"

        # The emulator flips Pending to Active 0.5 s after the call: asked every 50 ms there, it costs no more
        wait_until(ready, f"Lambda {name} to become Active", interval=0.05 if clients.settings.emulated else 0.5)

    def tags(self, clients: Clients, res: Resource) -> dict[str, str]:
        lam = clients.client("lambda")
        arn = lam.get_function_configuration(FunctionName=res.name)["FunctionArn"]
        return dict(lam.list_tags(Resource=arn).get("Tags", {}))

    def create(self, clients: Clients, res: Resource) -> None:
        self.start_create(clients, res)
        self.wait_ready(clients, res)

    def start_create(self, clients: Clients, res: Resource) -> None:
        """CreateFunction, without waiting for the function to leave Pending (`wait_ready` does)."""
        p = dict(res.params)
        wait_for_role(clients, p["Role"])
        retry_while_role_propagates(
            lambda: clients.client("lambda").create_function(
                **{k: p[k] for k in (*CONFIG_FIELDS, "FunctionName", "Architectures", "Tags")},
                Code={"ZipFile": build_zip()},
            ),
            clients, p["Role"], ROLE_NOT_READY,
        )

    def wait_ready(self, clients: Clients, res: Resource) -> None:
        """Until the function is Active: CreateFunction answers Pending (the emulator flips it after 0.5 s)."""
        self._wait_ready(clients, res.name)

    def update(self, clients: Clients, res: Resource, changed: list[str]) -> None:
        lam = clients.client("lambda")
        if "CodeSha256" in changed:
            lam.update_function_code(FunctionName=res.name, ZipFile=build_zip())
            self._wait_ready(clients, res.name)
        config = {k: res.params[k] for k in CONFIG_FIELDS if k in changed}
        if config:
            role = res.params["Role"]
            retry_while_role_propagates(lambda: lam.update_function_configuration(FunctionName=res.name, **config),
                                        clients, role, ROLE_NOT_READY)
            self._wait_ready(clients, res.name)

    def delete(self, clients: Clients, res: Resource) -> None:
        clients.client("lambda").delete_function(FunctionName=res.name)
