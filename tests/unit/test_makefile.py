"""The Makefile is the user's interface: `make help` names every target, and misuse gets one clear line.

It also installs: each virtualenv from its lock file (requirements/*.txt, resolved by `make lock` from
pyproject.toml), the runtime alone for `make demo`, the test and lint tools only for the targets that use them.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ROOT / "requirements"


def make(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    full = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "TARGET", "EMULATOR")}
    return subprocess.run(["make", "-s", *args], cwd=ROOT, env={**full, **(env or {})}, capture_output=True,
                          text=True, timeout=60)


def makefile_targets(internal: bool = False) -> set[str]:
    """The user's targets; `internal` adds helpers named with a leading underscore (not in help)."""
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^(_?[a-z][a-z-]*):" if internal else r"^([a-z][a-z-]*):", text, re.M))


def test_help_lists_every_target_with_a_line_and_the_variables() -> None:
    out = make("help").stdout
    listed = set(re.findall(r"^\s+(?:\x1b\[36m)?([a-z][a-z-]*)", out, re.M)) - {"variables"}
    assert makefile_targets() <= listed | {"variables"}
    for variable in ("TARGET", "PORT", "ORDERS", "RATE", "DURATION", "SEED", "DAYS", "ENGINE", "AUTO_APPROVE"):
        assert f"{variable}=" in out


def test_every_phony_target_exists() -> None:
    text = (ROOT / "Makefile").read_text()
    phony = set(re.search(r"\.PHONY:(.*?)\n\n", text, re.S).group(1).replace("\\", " ").split())
    assert phony <= makefile_targets(internal=True)


def test_localstack_without_its_token_says_so_in_one_line() -> None:
    proc = make("up", env={"TARGET": "compose", "EMULATOR": "localstack", "LOCALSTACK_AUTH_TOKEN": ""})
    assert proc.returncode != 0
    assert proc.stdout.strip() == (
        "error: LOCALSTACK_AUTH_TOKEN is not set; export your LocalStack token or use EMULATOR=ministack")


def test_help_is_plain_text_when_not_on_a_terminal() -> None:
    out = make("help").stdout  # captured: a pipe, not a terminal
    assert "\x1b[" not in out
    assert "  help " in out


# --- installs -------------------------------------------------------------------------------------------


def venvs_in(where: Path) -> list[str]:
    """Make variables that put every virtualenv under `where`, so a dry run sees a clone of its own."""
    return [f"VENV={where}/.venv", f"VENV_EMU={where}/.venv-emu", f"VENV_CLIENTS={where}/.venv-clients",
            f"VENV_TOOLS={where}/.venv-tools"]


def dry_run(*args: str, where: Path) -> str:
    proc = make("-n", *args, *venvs_in(where))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def locks_installed(out: str) -> set[str]:
    return set(re.findall(r"--require-hashes (?:-r )?requirements/(\w+)\.txt", out))


@pytest.mark.parametrize(("goal", "expected"), [
    (["demo"], {"tools", "runtime", "emulator"}),  # no test tools for a user
    (["up", "seed", "analyze"], {"tools", "runtime", "emulator"}),
    (["deploy-aws"], {"tools", "runtime"}),  # real AWS: no emulator either
    (["install", "TARGET=aws"], {"tools", "runtime"}),
    (["lint"], {"tools", "runtime", "dev"}),
    (["test"], {"tools", "runtime", "emulator", "dev", "clients"}),
])
def test_a_fresh_clone_installs_only_what_the_goal_needs(tmp_path: Path, goal: list[str],
                                                         expected: set[str]) -> None:
    assert locks_installed(dry_run(*goal, where=tmp_path)) == expected


def test_every_install_is_hash_checked_from_a_lock_file(tmp_path: Path) -> None:
    out = dry_run("install-dev", "lint", where=tmp_path)
    installs = [line for line in out.splitlines() if re.search(r"pip (install|sync)", line)]
    assert installs
    for line in installs:  # the project itself is the one thing installed from source, without its deps
        assert "--require-hashes" in line or "--no-deps -e ." in line, line


def fake_installed_clone(where: Path, dev: bool = False) -> None:
    """Every virtualenv's stamp, newer than the lock files: what a finished `make install` leaves."""
    stamps = [".venv-tools/bin/uv", ".venv/.installed", ".venv-emu/.installed", ".venv-clients/.installed"]
    for stamp in stamps + ([".venv/.installed-dev", ".venv/bin/pytest"] if dev else []):
        (where / stamp).parent.mkdir(parents=True, exist_ok=True)
        (where / stamp).touch()


def test_a_changed_lock_reinstalls_its_virtualenv_and_no_other(tmp_path: Path) -> None:
    fake_installed_clone(tmp_path)
    assert locks_installed(dry_run("install", where=tmp_path)) == set()
    for lock, goal, expected in [("runtime", "install", {"runtime"}), ("emulator", "install", {"emulator"}),
                                 ("dev", "demo", set()), ("dev", "lint", {"dev"}),
                                 ("clients", "test", {"clients", "dev"})]:
        out = dry_run("-W", f"requirements/{lock}.txt", goal, where=tmp_path)
        assert locks_installed(out) == expected, (lock, goal)
    assert locks_installed(dry_run("-W", "pyproject.toml", "install", where=tmp_path)) == {"runtime"}


def test_test_tools_once_installed_stay_when_the_runtime_lock_changes(tmp_path: Path) -> None:
    fake_installed_clone(tmp_path, dev=True)
    out = dry_run("-W", "requirements/runtime.txt", "demo", where=tmp_path)
    assert locks_installed(out) == {"dev"}  # .venv follows dev.txt, a superset at the same versions


def normalized(requirement: str) -> str:
    """`Name[extra]==1.0  # note` -> `name==1.0`."""
    name, version = re.match(r"\s*([A-Za-z0-9._-]+)(?:\[[^]]*\])?\s*==\s*([^\s;#]+)", requirement).groups()
    return f"{re.sub(r'[-_.]+', '-', name).lower()}=={version}"


def lock_pins(lock: str) -> dict[str, str]:
    """The lock's requirement lines (name==version), each checked to carry at least one hash."""
    text = (LOCKS / f"{lock}.txt").read_text()
    pins = {}
    for entry in re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2]):
        assert "--hash=sha256:" in entry, f"{lock}.txt: no hash for {entry.splitlines()[0]}"
        pins[normalized(entry)] = entry
    return pins


@pytest.mark.parametrize(("lock", "sources"), [
    ("runtime", ["project"]), ("dev", ["project", "dev"]), ("emulator", ["emulator"]),
    ("clients", ["clients"]), ("tools", ["tools"]),
])
def test_each_lock_file_holds_pyproject_pins_so_make_lock_was_run(lock: str, sources: list[str]) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    groups = {"project": project["project"]["dependencies"], **project["dependency-groups"]}
    pins = lock_pins(lock)
    for source in sources:
        for requirement in groups[source]:
            assert normalized(requirement) in pins, f"{requirement} ({source}) missing in {lock}.txt: make lock"
    assert (LOCKS / f"{lock}.txt").read_text().splitlines()[1].strip() == "#    make lock"


def test_the_runtime_lock_holds_no_test_tools() -> None:
    runtime = {pin.split("==")[0] for pin in lock_pins("runtime")}
    assert not runtime & {"pytest", "moto", "testcontainers", "pyathena", "ruff", "uv", "ministack"}


def test_the_readme_says_how_to_regenerate_the_locks() -> None:
    assert "make lock" in (ROOT / "README.md").read_text()


def test_an_empty_make_variable_reaches_the_cli_as_an_empty_value() -> None:
    """`make seed ORDERS=` sent `--orders --seed 42`: a usage box about an extra argument 42, never naming ORDERS."""
    recipe = make("-n", "seed", "ORDERS=", "SEED=", "DAYS=").stdout
    assert '--orders "" --seed "" --days ""' in recipe


def test_make_logs_follows_the_state_dir_it_is_given(tmp_path: Path) -> None:
    """The recipe tailed .state/ whatever STATE_DIR said, so `make logs STATE_DIR=...` showed another stack's logs."""
    import os

    (tmp_path / "runners").mkdir()
    (tmp_path / "runners" / "pipe.log").write_text("a line of this stack's pipe runner\n")
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "TARGET", "EMULATOR")}
    proc = subprocess.Popen(["make", "-s", "logs", f"STATE_DIR={tmp_path}"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    import threading

    watchdog = threading.Timer(60, os.killpg, (proc.pid, 15))  # a bound, not a wait: the line ends it sooner
    watchdog.start()
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:  # tail prints what the files hold at once, then follows: stop at the line
            seen.append(line)
            if "a line of this stack's pipe runner" in line:
                break
        assert any("a line of this stack's pipe runner" in s for s in seen), seen
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
