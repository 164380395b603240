"""Runner-served resources on the emulated targets: the request parameters, kept as a file.

The local runners read these files, so they run with exactly the parameters the `aws` target
sends to CreatePipe / CreateDeliveryStream / CreateCrawler (DESIGN.md section 1).
"""

from __future__ import annotations

import json
from pathlib import Path

from bootstrap.resources.base import NoFacts, State
from bootstrap.spec import Resource
from common.aws import Clients


def spec_path(runner_dir: Path, kind: str) -> Path:
    return runner_dir / f"{kind}.json"


class RunnerSpec(NoFacts):
    def desired(self, res: Resource) -> State:
        return {"params": res.params}

    def observe(self, clients: Clients, res: Resource) -> State | None:
        path = spec_path(clients.settings.runner_dir, res.kind)
        if not path.is_file():
            return None
        return {"params": json.loads(path.read_text())}

    def tags(self, clients: Clients, res: Resource) -> dict[str, str]:
        """A spec file has no tags; the emulated targets never destroy by tag."""
        return {}

    def create(self, clients: Clients, res: Resource) -> None:
        path = spec_path(clients.settings.runner_dir, res.kind)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(res.params, indent=2, sort_keys=True))
        tmp.replace(path)

    def update(self, clients: Clients, res: Resource, changed: list[str]) -> None:
        self.create(clients, res)

    def delete(self, clients: Clients, res: Resource) -> None:
        spec_path(clients.settings.runner_dir, res.kind).unlink(missing_ok=True)
