"""`make up` / `make down` as processes, against a real emulator of this module's own (127.0.0.1, free port).

Two `make up` at once share one emulator and one set of runners; a second pipe runner is refused; `make up`
names a runner that died at start instead of printing "runners up"; `make down` during a seed ends the seed
with one line. Every process started here is stopped here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bootstrap import emulator
from common.aws import Clients, emulator_healthy
from common.config import ROOT, Settings, load_settings, with_overrides
from common.errors import TerminalError
from runners import service
from runners.loop import read_status
from tests.conftest import free_port


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    settings = load_settings(env={}, port=free_port(), state_dir=tmp_path_factory.mktemp("process-control"))
    try:
        yield settings
    finally:
        service.stop(settings)
        emulator.stop(settings)


def cli_env(settings: Settings) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith("AWS_") and k not in ("TARGET", "PIPELINE_CONFIG", "DEBUG", "ENDPOINT")}
    return {**keep, "PORT": str(settings.port), "STATE_DIR": str(settings.state_dir)}


def cli(settings: Settings, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "cli", *args], cwd=ROOT, env=cli_env(settings),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str], timeout: float = 300) -> tuple[int, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return proc.returncode, out + err


def lines(output: str) -> list[str]:
    return [ln.strip() for ln in output.splitlines() if ln.strip()]


def ensure_up(settings: Settings) -> None:
    code, output = finish(cli(settings, "up"))
    assert code == 0, output


def test_two_make_up_at_once_share_one_emulator_and_one_set_of_runners(stack: Settings) -> None:
    first, second = cli(stack, "up"), cli(stack, "up")
    results = [finish(first), finish(second)]
    for code, output in results:
        assert code == 0, output
        assert "Traceback" not in output
    emulators = {re.search(r"emulator up at \S+ \(pid (\d+)", out)[1] for _, out in results}  # type: ignore[index]
    assert len(emulators) == 1, results  # the second found the first's emulator
    pid = int(emulators.pop())
    assert emulator.running_pid(stack) == pid  # the pid file names the emulator that answers
    assert emulator_healthy(stack.endpoint_url or "")
    runners = {re.search(r"runners up: .*", out)[0] for _, out in results}  # type: ignore[index]
    assert runners == {"runners up: " + ", ".join(f"{n} (pid {service.running(stack, n)})" for n in service.RUNNERS)}


def test_a_second_pipe_runner_exits_with_one_line(stack: Settings) -> None:
    ensure_up(stack)
    pid = service.running(stack, "pipe")
    code, output = finish(cli(stack, "runner", "pipe"), timeout=60)
    assert code == 1
    assert lines(output) == [f"error: the pipe runner already runs as pid {pid}; `make down` stops it"]
    assert service.running(stack, "pipe") == pid


def test_up_names_the_runner_that_cannot_read_its_checkpoint(stack: Settings) -> None:
    ensure_up(stack)
    service.stop(stack)
    checkpoint = stack.runner_dir / "pipe.checkpoint.json"
    kept = stack.runner_dir / "pipe.checkpoint.json.kept"
    if checkpoint.exists():
        checkpoint.replace(kept)
    checkpoint.mkdir()  # unreadable as a file
    try:
        code, output = finish(cli(stack, "up"))
        assert code == 1, output
        assert "Traceback" not in output
        assert "runners up" not in output
        last = lines(output)[-1]
        assert last.startswith("error: the pipe runner exited right after it started (code 1); "
                               f"its log {stack.runner_dir / 'pipe.log'} ends with: "), last
        assert "IsADirectoryError" in last
        assert service.running(stack, "pipe") is None
    finally:
        checkpoint.rmdir()
        if kept.exists():
            kept.replace(checkpoint)
    ensure_up(stack)
    status = read_status(stack.runner_dir, "pipe") or {}
    assert status["pid"] == service.running(stack, "pipe") and status["ok_passes"] >= 1


def test_start_names_a_runner_without_its_spec(emulator_settings: Settings, tmp_path: Path) -> None:
    settings = with_overrides(emulator_settings, state_dir=tmp_path)  # nothing bootstrapped here
    try:
        with pytest.raises(TerminalError) as err:
            service.start(settings)
    finally:
        service.stop(settings)
    assert re.match(r"the (pipe|firehose) runner exited right after it started \(code 1\); its log \S+ ends with: "
                    r"error: no (pipe|firehose) spec at ", str(err.value)), err.value


def test_make_down_during_a_seed_ends_the_seed_with_one_line(stack: Settings) -> None:
    ensure_up(stack)
    clients = Clients(stack)
    seed = cli(stack, "seed", "--orders", "100000", "--rate", "200")
    try:
        deadline = time.monotonic() + 120
        while clients.dynamodb.scan(TableName=stack.table_name, Select="COUNT", Limit=50)["Count"] == 0:
            assert seed.poll() is None and time.monotonic() < deadline, finish(seed)
            time.sleep(0.1)
        code, output = finish(cli(stack, "down"))
        assert code == 0, output
    finally:
        code, output = finish(seed, timeout=180)
    assert code == 1, output
    assert "Traceback" not in output and "╭" not in output
    errors = [ln for ln in lines(output) if ln.startswith("error:")]
    assert len(errors) == 1, output
    assert f"127.0.0.1:{stack.port}" in errors[0]
    assert "make up" in errors[0]

