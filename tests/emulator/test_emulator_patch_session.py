"""The model_session patch (docs/emulator-patches.md, section 5): one botocore session for all service models.

Runs MiniStack's `core/responses.py` in the emulator's own interpreter (`emulator_python()`), with and without
the patch, counting `botocore.session.get_session()` calls while the first calls of several services load
their models. Unpatched MiniStack 1.5.33 builds one session per service (the cost the patch removes: if this
side fails, upstream fixed it and the patch can go); patched, one in all. The models and the Content-Types
derived from them are the same either way, and Step Functions, which imports `_service_model` by name when
it loads, gets the patched one. No emulator is started: this is the function alone.
"""

from __future__ import annotations

import json
import sys

import pytest

from tests.fixtures.emulator_probe import run_in_emulator

SERVICES = ("dynamodb", "kinesis", "s3", "firehose", "iam", "logs", "pipes", "glue", "states", "monitoring")

PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
import botocore.session
calls = []
real = botocore.session.get_session
def counting(*args, **kwargs):
    calls.append(1)
    return real(*args, **kwargs)
botocore.session.get_session = counting
if sys.argv[2] == "patched":
    import model_session
    model_session.apply()
from ministack.core import responses
services = json.loads(sys.argv[3])
models = {}
for service in services:
    model = responses._service_model(service)
    models[service] = None if model is None else [
        model.service_name, model.metadata.get("protocol"), model.metadata.get("jsonVersion"),
        sorted(model.operation_names)]
    responses._service_model(service)  # cached: no new session either way
content_types = {s: [responses.expected_success_content_type(s, "application/json"),
                     responses.expected_error_content_type(s, "text/xml")] for s in services}
from ministack.services import stepfunctions
print(json.dumps({"sessions": len(calls), "models": models, "content_types": content_types,
                  "stepfunctions_patched": stepfunctions._service_model is responses._service_model
                  and responses._service_model.__module__ == "model_session"}))
"""


def probe(mode: str) -> dict:
    """One fresh emulator interpreter: load the models of SERVICES, report sessions built and what was loaded."""
    return run_in_emulator(PROBE, mode, json.dumps(SERVICES))


@pytest.fixture(scope="module")
def runs() -> dict[str, dict]:
    return {mode: probe(mode) for mode in ("unpatched", "patched")}


def test_unpatched_ministack_builds_a_session_per_service(runs: dict[str, dict]) -> None:
    assert runs["unpatched"]["sessions"] == len(SERVICES)


def test_patched_builds_one_session_for_every_service(runs: dict[str, dict]) -> None:
    assert runs["patched"]["sessions"] == 1
    assert runs["patched"]["stepfunctions_patched"], "stepfunctions must import the patched _service_model"


def test_patched_loads_the_same_models_and_content_types(runs: dict[str, dict]) -> None:
    assert all(runs["patched"]["models"][s] is not None for s in SERVICES)
    assert runs["patched"]["models"] == runs["unpatched"]["models"]
    assert runs["patched"]["content_types"] == runs["unpatched"]["content_types"]


def test_boot_applies_it_before_anything_imports_service_model() -> None:
    from bootstrap.emulator_patches import boot

    assert boot.PATCHES[0] == "model_session"
    assert sys.modules.get("ministack") is None  # the project's interpreter never imports MiniStack
