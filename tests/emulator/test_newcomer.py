"""The AWS tools a newcomer already knows work against the stack, with the lines `make env` prints,
evaluated by a real shell, and those lines leave the shell's own python and aws first on PATH."""

from __future__ import annotations

import json
import os
import subprocess

from bootstrap.emulator import EMULATOR_VENV
from cli import shell_lines
from common.aws import Clients
from common.config import Settings


def in_shell(settings: Settings, commands: str) -> str:
    """Run `commands` in bash after `eval "$(make -s env)"`'s lines, as a user's terminal would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    script = "\n".join([*shell_lines(settings), commands])
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=120,
                          check=True).stdout


def test_aws_cli_and_awslocal_list_the_stacks_resources(emulator_settings: Settings,
                                                        emulator_clients: Clients) -> None:
    emulator_clients.s3.create_bucket(Bucket="newcomer-bucket")
    emulator_clients.dynamodb.create_table(
        TableName="newcomer_orders", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "order_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "order_id", "KeyType": "HASH"}])
    try:
        aws = EMULATOR_VENV / "bin" / "aws"  # any AWS CLI: AWS_ENDPOINT_URL points it at the stack
        tables = in_shell(emulator_settings, f"{aws} dynamodb list-tables")
        assert "newcomer_orders" in json.loads(tables)["TableNames"]
        assert "newcomer-bucket" in in_shell(emulator_settings, "awslocal s3 ls")
    finally:
        emulator_clients.dynamodb.delete_table(TableName="newcomer_orders")
        emulator_clients.s3.delete_bucket(Bucket="newcomer-bucket")


def test_the_env_lines_do_not_change_which_python_or_aws_the_shell_runs(emulator_settings: Settings) -> None:
    before = subprocess.run(["bash", "-c", "echo $PATH; command -v python3; command -v aws || true"],
                            capture_output=True, text=True, check=True).stdout
    after = in_shell(emulator_settings, "echo $PATH; command -v python3; command -v aws || true")
    assert after == before
