"""`make env`'s lines: the emulated targets get the pipeline's own endpoint and dummy credentials."""

from __future__ import annotations

import shlex
import subprocess

from bootstrap.emulator import EMULATOR_VENV
from bootstrap.shell_env import env_exports, shell_lines
from common.aws import DUMMY_CREDENTIALS
from common.config import load_settings

ATHENA = "http://127.0.0.1:4607"


def test_emulated_targets_export_the_endpoint_and_the_clients_dummy_credentials() -> None:
    settings = load_settings(env={"TARGET": "embedded", "AWS_REGION": "eu-west-1", "PORT": "4566"})
    assert env_exports(settings, ATHENA) == {
        "AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL": settings.endpoint_url,
        "AWS_ACCESS_KEY_ID": DUMMY_CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": DUMMY_CREDENTIALS["aws_secret_access_key"],
        "LOCALSTACK_HOST": settings.endpoint_url.removeprefix("http://"),  # type: ignore[union-attr]
        "AWS_ENDPOINT_URL_ATHENA": ATHENA,
    }
    assert list(env_exports(settings, ATHENA))[:3] == ["AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL"]


def test_aws_exports_only_the_region() -> None:
    settings = load_settings(env={"TARGET": "aws", "AWS_REGION": "eu-west-1"})
    assert env_exports(settings, ATHENA) == {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-1"}
    assert shell_lines(settings, ATHENA) == ["export AWS_REGION=eu-west-1", "export AWS_DEFAULT_REGION=eu-west-1"]


def test_the_lines_evaluate_in_a_shell_to_the_exports_and_an_awslocal_function() -> None:
    settings = load_settings(env={"TARGET": "embedded", "AWS_REGION": "eu-west-1"})
    lines = shell_lines(settings, ATHENA)
    assert lines[-1] == f'awslocal() {{ {shlex.quote(str(EMULATOR_VENV / "bin" / "awslocal"))} "$@"; }}'
    script = "\n".join([*lines, "type -t awslocal", 'echo "$AWS_ENDPOINT_URL_ATHENA $AWS_ACCESS_KEY_ID"'])
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True, timeout=30).stdout
    assert out.split("\n")[:2] == ["function", f"{ATHENA} {DUMMY_CREDENTIALS['aws_access_key_id']}"]
