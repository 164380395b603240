"""What `make env` prints: the shell exports that point the AWS CLI, awslocal and any SDK at the target.

On the emulated targets the endpoint and the dummy credentials are the ones `common/aws.py` gives the
pipeline's own clients, so a shell and the pipeline reach the same stack. On `aws` only the region is set:
credentials come from the user's own chain. PATH is left alone, so the user's python and aws stay first.
"""

from __future__ import annotations

import shlex

from bootstrap.emulator import EMULATOR_VENV
from common.aws import DUMMY_CREDENTIALS
from common.config import Settings


def env_exports(settings: Settings, athena_url: str) -> dict[str, str]:
    """The variables to export; `athena_url` is the project's Athena endpoint (emulated targets only)."""
    exports = {"AWS_REGION": settings.region, "AWS_DEFAULT_REGION": settings.region}
    if settings.emulated:
        endpoint = settings.endpoint_url or ""
        exports["AWS_ENDPOINT_URL"] = endpoint
        exports.update({key.upper(): value for key, value in DUMMY_CREDENTIALS.items()})  # AWS_ACCESS_KEY_ID...
        exports["LOCALSTACK_HOST"] = endpoint.removeprefix("http://")  # what awslocal reads
        exports["AWS_ENDPOINT_URL_ATHENA"] = athena_url  # the project's Trino-speaking mirror
    return exports


def shell_lines(settings: Settings, athena_url: str) -> list[str]:
    """`export` lines, plus an `awslocal` shell function on the emulated targets (awslocal lives in the
    emulator's virtualenv, which is not put on PATH)."""
    lines = [f"export {key}={shlex.quote(value)}" for key, value in env_exports(settings, athena_url).items()]
    if settings.emulated:
        lines.append(f'awslocal() {{ {shlex.quote(str(EMULATOR_VENV / "bin" / "awslocal"))} "$@"; }}')
    return lines
