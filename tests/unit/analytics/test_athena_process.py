"""make up launches the Athena endpoint early and waits for it last: a start that fails, or an up that fails
in between, leaves no process and no pid file behind (no server: the endpoint is stood in for)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from analytics.athena_api import process
from common.config import load_settings
from common.errors import TerminalError
from tests.conftest import free_port


class StandIn:
    """Started by `spawn` instead of the endpoint: `python -c <code>`, the code set per test."""

    def __init__(self) -> None:
        self.code = ""
        self.started: list[subprocess.Popen[bytes]] = []

    def spawn(self, argv: list[str], log: Path, env: dict[str, str],
              cwd: Path | None = None) -> subprocess.Popen[bytes]:
        self.started.append(subprocess.Popen([sys.executable, "-c", self.code]))
        return self.started[-1]


@pytest.fixture()
def stand_in(monkeypatch: pytest.MonkeyPatch) -> Iterator[StandIn]:
    fake = StandIn()
    monkeypatch.setattr(process, "spawn", fake.spawn)
    yield fake
    for proc in fake.started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_an_up_that_fails_before_waiting_stops_the_launched_endpoint(tmp_path: Path, stand_in: StandIn) -> None:
    stand_in.code = "import time; time.sleep(120)"
    settings = load_settings(env={}, port=free_port(), state_dir=tmp_path)
    launch = process.launch(settings, port=free_port())
    assert stand_in.started[0].poll() is None
    launch.abandon()
    assert stand_in.started[0].wait(timeout=30) is not None
    assert not process.pid_file(settings, launch.port).exists()


def test_an_endpoint_that_dies_while_starting_is_one_line_and_leaves_no_pid_file(tmp_path: Path,
                                                                                stand_in: StandIn) -> None:
    stand_in.code = "raise SystemExit(3)"
    settings = load_settings(env={}, port=free_port(), state_dir=tmp_path)
    launch = process.launch(settings, port=free_port())
    with pytest.raises(TerminalError, match=r"the Athena endpoint did not start on http://127\.0\.0\.1:"):
        launch.wait(timeout=30)
    assert not process.pid_file(settings, launch.port).exists()


# Run in a fresh interpreter: this test process has long imported the query engine.
LAZY_PROBE = """
import json, sys, urllib.error, urllib.request
from analytics.athena_api.server import AthenaServer
from common.config import load_settings

ENGINE = ("analytics.query", "analytics.athena_api.service", "duckdb", "pyarrow", "pandas", "boto3")
settings = load_settings(env={}, port=int(sys.argv[1]), state_dir=sys.argv[2])
with AthenaServer(settings, port=0, register=False) as server:
    with urllib.request.urlopen(server.url + "/_athena/health", timeout=30) as resp:
        health = json.loads(resp.read())
    before = [m for m in ENGINE if m in sys.modules]
    request = urllib.request.Request(server.url + "/", data=b'{"QueryExecutionId": "nope"}', method="POST",
                                     headers={"X-Amz-Target": "AmazonAthena.GetQueryExecution",
                                              "Content-Type": "application/x-amz-json-1.1"})
    try:
        urllib.request.urlopen(request, timeout=60)
        answer = None
    except urllib.error.HTTPError as exc:
        answer = json.loads(exc.read())
    after = [m for m in ENGINE if m in sys.modules]
print(json.dumps({"health": health, "before": before, "after": after, "answer": answer}))
"""


def test_the_endpoint_answers_its_health_check_before_loading_the_query_engine(tmp_path: Path) -> None:
    """`make up` waits for the health check while the bootstrap runs: the engine's import (DuckDB, pyarrow,
    pandas, boto3: about a second of CPU) waits for the first query action, which then answers as before."""
    done = subprocess.run([sys.executable, "-c", LAZY_PROBE, str(free_port()), str(tmp_path)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout)
    assert probe["health"]["service"] == "athena"
    assert probe["before"] == []
    assert "analytics.athena_api.service" in probe["after"] and "duckdb" in probe["after"]
    assert probe["answer"]["__type"] == "InvalidRequestException"
    assert "nope was not found" in probe["answer"]["Message"]


# The emulator's side stands in as a loopback HTTP server answering GetWorkGroup as MiniStack does ("primary",
# without the Configuration members it omits).
WORKGROUP_PROBE = """
import json, sys, threading, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from analytics.athena_api.server import AthenaServer
from common.config import load_settings

class Emulator(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps({"WorkGroup": {"Name": "primary", "Configuration": {}}}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

emulator = ThreadingHTTPServer(("127.0.0.1", 0), Emulator)
threading.Thread(target=emulator.serve_forever, daemon=True).start()
ENGINE = ("analytics.query", "analytics.athena_api.service", "duckdb", "pyarrow", "pandas", "boto3")
settings = load_settings(env={}, port=emulator.server_address[1], state_dir=sys.argv[1])
with AthenaServer(settings, port=0, register=False) as server:
    request = urllib.request.Request(server.url + "/", data=b'{"WorkGroup": "primary"}', method="POST",
                                     headers={"X-Amz-Target": "AmazonAthena.GetWorkGroup",
                                              "Content-Type": "application/x-amz-json-1.1"})
    with urllib.request.urlopen(request, timeout=60) as resp:
        answer = json.loads(resp.read())
    loaded = [m for m in ENGINE if m in sys.modules]
emulator.shutdown()
emulator.server_close()
print(json.dumps({"answer": answer, "loaded": loaded}))
"""


def test_get_work_group_is_answered_without_loading_the_query_engine(tmp_path: Path) -> None:
    """`make up`'s plan reads the workgroup while the endpoint starts: the answer (the emulator's workgroup with
    the Configuration members AWS always returns) needs no DuckDB, and loading it had made that plan 2-5 s."""
    done = subprocess.run([sys.executable, "-c", WORKGROUP_PROBE, str(tmp_path)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout)
    assert probe["loaded"] == []
    configuration = probe["answer"]["WorkGroup"]["Configuration"]
    assert configuration["EnforceWorkGroupConfiguration"] is False
    assert configuration["EngineVersion"]["EffectiveEngineVersion"] == "Athena engine version 3"
    assert probe["answer"]["WorkGroup"]["State"] == "ENABLED"
