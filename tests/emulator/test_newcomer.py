"""The AWS tools a newcomer already knows work against the stack, with the exports `make env` prints."""

from __future__ import annotations

import json
import os
import subprocess

from bootstrap.emulator import EMULATOR_VENV
from cli import env_exports
from common.aws import Clients
from common.config import Settings


def shell_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    exports = env_exports(settings)
    exports["PATH"] = exports["PATH"].replace("$PATH", env.get("PATH", ""))
    return {**env, **exports}


def test_aws_cli_and_awslocal_list_the_stacks_resources(emulator_settings: Settings,
                                                        emulator_clients: Clients) -> None:
    emulator_clients.s3.create_bucket(Bucket="newcomer-bucket")
    emulator_clients.dynamodb.create_table(
        TableName="newcomer_orders", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "order_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "order_id", "KeyType": "HASH"}])
    env = shell_env(emulator_settings)
    try:
        tables = subprocess.run([str(EMULATOR_VENV / "bin" / "aws"), "dynamodb", "list-tables"], env=env,
                                capture_output=True, text=True, timeout=60, check=True)
        assert "newcomer_orders" in json.loads(tables.stdout)["TableNames"]
        buckets = subprocess.run(["awslocal", "s3", "ls"], env=env, capture_output=True, text=True, timeout=60,
                                 check=True)
        assert "newcomer-bucket" in buckets.stdout
    finally:
        emulator_clients.dynamodb.delete_table(TableName="newcomer_orders")
        emulator_clients.s3.delete_bucket(Bucket="newcomer-bucket")
