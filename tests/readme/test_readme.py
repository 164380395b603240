"""The README cannot rot: its set-up commands and its tour run, as written, in a fresh clone.

A fresh clone has no virtualenvs, so this is a newcomer's first hour: `make demo` installs everything,
starts the embedded emulator on a free loopback port, runs the pipeline end to end; then each command
of the tour runs in order, and `make down` stops what was started. `make chaos` says it runs on a
throwaway emulator of its own, so it runs alongside the rest of the tour (started right after `make demo`,
collected at its place in the tour): that saves its minute, and shows it leaves the tour's stack alone.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
ON_ITS_OWN = ("make chaos",)  # tour commands on a stack of their own (the README says so): run alongside the rest


def setup_commands(text: str) -> list[str]:
    """The first code block: one command per line (comments stripped)."""
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block, "the README opens with a ```bash block of set-up commands"
    return [line.split("#", 1)[0].strip() for line in block.group(1).splitlines() if line.strip()]


def tour_commands(text: str) -> list[str]:
    """The `command` column of the tour table, in order ("A then B" runs A && B)."""
    section = text.split("## The tour", 1)[1].split("\n\n", 2)[1]
    commands = []
    for row in section.splitlines()[2:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        commands.append(" && ".join(re.findall(r"`([^`]+)`", cells[1])))
    return commands


def test_the_readme_opens_with_exactly_the_two_commands() -> None:
    assert setup_commands(README.read_text()) == ["make demo", "make test"]


def test_the_tour_names_every_stage() -> None:
    tour = tour_commands(README.read_text())
    for stage in ("make up", "make plan", "make seed", "make drain", "make status", "make crawl", "make analyze",
                  "make verify", "make down"):
        assert any(c.startswith(stage) for c in tour), stage


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_setup_and_tour_run_in_a_fresh_clone(tmp_path: Path) -> None:
    if not shutil.which("git") or not (ROOT / ".git").exists():
        pytest.skip("needs the project's git checkout to clone")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    # The working tree as it is now (uncommitted edits included), so the test checks what is being changed.
    for path in subprocess.run(["git", "ls-files", "-m"], cwd=ROOT, capture_output=True, text=True).stdout.split():
        shutil.copy2(ROOT / path, clone / path)
    text = (clone / "README.md").read_text()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTEST", "VIRTUAL_ENV"))}
    env.update(PORT=str(_free_port()), ORDERS="400", MAKEFLAGS="")

    def as_run(command: str) -> str:
        return command.replace("make ", "make -s ", 1) if "$(" not in command else command

    def run(command: str) -> str:
        proc = subprocess.run(["bash", "-c", command], cwd=clone, env=env, capture_output=True, text=True,
                              timeout=900)
        assert proc.returncode == 0, f"`{command}` failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        return proc.stdout

    background: dict[str, tuple[subprocess.Popen, Path]] = {}
    stopped = False

    def launch(command: str) -> None:
        log = tmp_path / f"background-{len(background)}.log"
        with log.open("w") as out:  # a file, not a pipe: nobody reads it until the command ends
            background[command] = (subprocess.Popen(["bash", "-c", command], cwd=clone, env=env, stdout=out,
                                                    stderr=subprocess.STDOUT, start_new_session=True), log)

    def collect(command: str) -> str:
        proc, log = background[command]
        proc.wait(timeout=900)
        output = log.read_text()
        assert proc.returncode == 0, f"`{command}` failed:\n{output[-6000:]}"
        return output

    try:
        demo = run(setup_commands(text)[0])  # make demo; `make test` is this very suite
        assert "lake and table agree" in demo
        assert (clone / "dashboard" / "index.html").is_file()
        tour = tour_commands(text)
        for cmd in tour:
            if cmd.startswith(ON_ITS_OWN):
                launch(as_run(cmd))
        outputs = {cmd: collect(as_run(cmd)) if cmd.startswith(ON_ITS_OWN) else run(as_run(cmd)) for cmd in tour}
        stopped = tour[-1].startswith("make down")  # the tour ends with it, and it passed: nothing left to stop
    finally:
        for proc, _ in background.values():  # on a failure: Ctrl-C, so the drill stops what it started
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        if not stopped:
            subprocess.run(["make", "-s", "down"], cwd=clone, env=env, capture_output=True, timeout=120)
    with socket.socket() as sock:  # `make down` stopped the emulator: its port answers no more
        assert sock.connect_ex(("127.0.0.1", int(env["PORT"]))) != 0
    verify = next(out for cmd, out in outputs.items() if cmd.startswith("make verify"))
    assert "lake and table agree" in verify
    explore = next(out for cmd, out in outputs.items() if "awslocal" in cmd)
    assert "sales-orders-lake-" in explore
    plan = next(out for cmd, out in outputs.items() if cmd.startswith("make plan"))
    assert "0 to create, 0 to update" in plan
    chaos = next(out for cmd, out in outputs.items() if cmd.startswith("make chaos"))
    assert "emulator restarts: 1" in chaos and "changes lost: 0" in chaos and "verify: lake and table agree" in chaos
