"""One handler per resource kind: observe the live state, create, update, delete.

A handler compares only the fields the plan manages (`desired` vs `observe`), so `plan` can say
exactly what would change and a second `apply` finds nothing to do.
"""

from __future__ import annotations

from bootstrap.resources import athena, dynamodb, glue, kinesis, lambdas, local, logs, roles, s3, sqs, tagged
from bootstrap.resources.base import Handler

HANDLERS: dict[str, Handler] = {
    "s3_bucket": s3.Bucket(),
    "dynamodb_table": dynamodb.Table(),
    "kinesis_stream": kinesis.Stream(),
    "iam_role": roles.Role(),
    "log_group": logs.LogGroup(),
    "lambda_function": lambdas.Function(),
    "glue_database": glue.Database(),
    "glue_table": glue.Table(),
    "sqs_queue": sqs.Queue(),
    "pipe": tagged.Pipe(),
    "delivery_stream": tagged.DeliveryStream(),
    "glue_crawler": tagged.Crawler(),
    "athena_workgroup": athena.WorkGroup(),
}
LOCAL_HANDLER: Handler = local.RunnerSpec()


def handler_for(kind: str, served_locally: bool) -> Handler:
    """Runner-served kinds on emulated targets are files the local runners read, not emulator calls."""
    return LOCAL_HANDLER if served_locally else HANDLERS[kind]
