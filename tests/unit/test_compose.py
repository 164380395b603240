"""compose/: the compose file's structure, its shell snippets run for real, and the Dockerfile's inputs.

No Docker engine is needed: the file is parsed with yaml and interpolated here the way compose does
for the `${VAR:-default}` forms it uses; the healthcheck and guard snippets run locally against a
loopback HTTP server or a temp dir. `docker compose config` runs too when the compose plugin exists.
"""

from __future__ import annotations

import http.server
import json
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml

from common.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
DOCKERFILE = COMPOSE_DIR / "Dockerfile"
ENV_EXAMPLE = COMPOSE_DIR / ".env.example"
VAR = re.compile(r"\$\{([A-Z0-9_]+)(?::?-([^}]*))?\}")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's `${VAR}` / `${VAR:-default}` on every string of a parsed file ('$$' is a literal '$')."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if isinstance(value, str):
        parts = value.split("$$")
        return "$".join(VAR.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), p) for p in parts)
    return value


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(raw: dict[str, Any]) -> dict[str, Any]:
    return interpolate(raw["services"], {})


def test_services_and_profiles(services: dict[str, Any]) -> None:
    assert set(services) == {"ministack", "localstack", "pipeline", "pipeline-localstack", "athena"}
    assert "profiles" not in services["athena"]
    assert "profiles" not in services["ministack"]
    assert "profiles" not in services["pipeline"]
    assert services["localstack"]["profiles"] == ["localstack"]
    assert services["pipeline-localstack"]["profiles"] == ["localstack"]


def test_images_are_pinned(services: dict[str, Any]) -> None:
    assert services["ministack"]["image"] == "ministackorg/ministack:1.5.33-full"
    assert services["localstack"]["image"].startswith("localstack/localstack:")


@pytest.mark.parametrize("name", ["ministack", "localstack"])
def test_emulator_port_is_loopback_only(raw: dict[str, Any], name: str) -> None:
    assert interpolate(raw["services"][name]["ports"], {}) == ["127.0.0.1:4566:4566"]
    assert interpolate(raw["services"][name]["ports"], {"PORT": "4600"}) == ["127.0.0.1:4600:4566"]


def test_nothing_else_publishes_ports(services: dict[str, Any]) -> None:
    assert [n for n, s in services.items() if "ports" in s] == ["ministack", "localstack", "athena"]
    assert services["athena"]["ports"] == ["127.0.0.1:4607:4607"]  # loopback only, PORT + 41 as on embedded


def test_the_emulator_starts_through_the_pinned_patches_and_forwards_athena(services: dict[str, Any]) -> None:
    ministack = services["ministack"]
    (mount,) = ministack["volumes"]
    source, target, mode = mount.split(":")
    assert (COMPOSE_DIR / source).resolve() == ROOT / "bootstrap" / "emulator_patches" and mode == "ro"
    assert ministack["entrypoint"] == ["python", f"{target}/boot.py"]
    athena = services["athena"]
    (script,) = athena["command"]
    words = shlex.split(script)
    assert words[:4] == ["exec", "python", "-m", "analytics.athena_api"]
    assert (ROOT / "analytics" / "athena_api" / "__main__.py").is_file()
    advertised = words[words.index("--advertise") + 1]
    assert ministack["environment"]["LOCAL_ATHENA_ENDPOINT"] == advertised == "http://athena:4607"
    assert athena["depends_on"] == {"ministack": {"condition": "service_healthy"}}


def test_ministack_runs_quiet_and_in_memory(services: dict[str, Any]) -> None:
    env = services["ministack"]["environment"]
    assert (env["LOG_LEVEL"], env["PERSIST_STATE"], env["GATEWAY_PORT"]) == ("WARNING", "0", "4566")


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)
    elif isinstance(value, str):
        yield value


def test_no_required_variables(raw: dict[str, Any]) -> None:
    # `${X:?msg}` is checked before profiles apply: it would break the default profile too.
    assert [s for s in strings(raw) if re.search(r"\$\{[A-Z0-9_]+:?\?", s)] == []
    assert raw["services"]["localstack"]["environment"]["LOCALSTACK_AUTH_TOKEN"] == "${LOCALSTACK_AUTH_TOKEN:-}"


def test_localstack_guard_needs_the_token(services: dict[str, Any]) -> None:
    entrypoint = services["localstack"]["entrypoint"]
    assert entrypoint[:2] == ["/bin/sh", "-c"]
    missing = subprocess.run(["/bin/sh", "-c", entrypoint[2]], env={"PATH": "/usr/bin:/bin"},
                             capture_output=True, text=True, timeout=10)
    assert missing.returncode == 64
    assert missing.stderr.strip() == (
        "LOCALSTACK_AUTH_TOKEN is empty: set it in compose/.env or the environment to use the localstack profile"
    )
    # With a token the guard hands over to the image's own entrypoint (absent here: 127).
    given = subprocess.run(["/bin/sh", "-c", entrypoint[2]], capture_output=True, text=True, timeout=10,
                           env={"PATH": "/usr/bin:/bin", "LOCALSTACK_AUTH_TOKEN": "t"})
    assert given.returncode == 127
    assert "docker-entrypoint.sh" in given.stderr


@pytest.mark.parametrize("name", ["ministack", "localstack", "pipeline", "pipeline-localstack"])
def test_healthchecks_are_complete(services: dict[str, Any], name: str) -> None:
    check = services[name]["healthcheck"]
    assert check["test"][0] == "CMD"
    assert re.fullmatch(r"\d+s", check["interval"]) and re.fullmatch(r"\d+s", check["timeout"])
    assert check["retries"] >= 10


@pytest.mark.parametrize("name", ["ministack", "localstack"])
def test_emulator_healthchecks_hit_the_health_endpoint(services: dict[str, Any], name: str) -> None:
    assert "http://localhost:4566/_localstack/health" in " ".join(services[name]["healthcheck"]["test"])


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/_localstack/health" else 404)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_ministack_healthcheck_command_runs(services: dict[str, Any], health_server: int) -> None:
    _, program, flag, code = services["ministack"]["healthcheck"]["test"]
    assert (program, flag) == ("python", "-c")
    up = code.replace("localhost:4566", f"127.0.0.1:{health_server}")
    assert subprocess.run([sys.executable, "-c", up], capture_output=True, timeout=10).returncode == 0
    wrong_path = up.replace("/_localstack/health", "/nope")
    assert subprocess.run([sys.executable, "-c", wrong_path], capture_output=True, timeout=10).returncode == 1


def test_pipeline_healthcheck_reads_runner_status(services: dict[str, Any], tmp_path: Path) -> None:
    _, program, flag, code = services["pipeline"]["healthcheck"]["test"]
    assert (program, flag) == ("python", "-c")
    code = code.replace("/app/.state/runners/", f"{tmp_path}/")

    def healthy() -> bool:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=10).returncode == 0

    assert not healthy()  # no status yet: the bootstrap is still applying
    now = time.time()
    (tmp_path / "pipe.status.json").write_text(json.dumps({"updated": now}))
    assert not healthy()  # one runner up is not enough
    (tmp_path / "firehose.status.json").write_text(json.dumps({"updated": now}))
    assert healthy()
    (tmp_path / "firehose.status.json").write_text(json.dumps({"updated": now - 120}))
    assert not healthy()  # a runner that stopped writing


def test_pipeline_waits_for_its_emulator(services: dict[str, Any]) -> None:
    assert services["pipeline"]["depends_on"] == {"ministack": {"condition": "service_healthy"}}
    assert services["pipeline-localstack"]["depends_on"] == {"localstack": {"condition": "service_healthy"}}
    # The LocalStack stack must not pull MiniStack in (both publish the same host port).
    assert "ministack" not in services["pipeline-localstack"]["depends_on"]


@pytest.mark.parametrize(("name", "emulator"), [("pipeline", "ministack"), ("pipeline-localstack", "localstack")])
def test_pipeline_environment_is_valid_settings(services: dict[str, Any], name: str, emulator: str) -> None:
    env = {k: str(v) for k, v in services[name]["environment"].items()}
    known = {f.name.upper() for f in fields(Settings)} | {"AWS_ENDPOINT_URL"}
    assert sorted(set(env) - known) == []
    settings = load_settings(env=env)
    assert settings.target == "compose"
    assert settings.endpoint_url == f"http://{emulator}:4566"
    assert env["AWS_ENDPOINT_URL"] == f"http://{emulator}:4566"
    assert settings.state_dir == Path("/app/.state")


def test_pipeline_knobs_pass_through(raw: dict[str, Any]) -> None:
    env = interpolate(raw["services"]["pipeline"], {"OUTPUT_FORMAT": "jsonl", "SHARD_COUNT": "2"})["environment"]
    settings = load_settings(env={k: str(v) for k, v in env.items()})
    assert (settings.output_format, settings.shard_count) == ("jsonl", 2)


def test_pipeline_command_uses_cli_commands_that_exist(services: dict[str, Any]) -> None:
    import cli

    names = {c.name or c.callback.__name__.replace("_", "-") for c in cli.app.registered_commands}  # type: ignore[union-attr]
    assert services["pipeline"]["entrypoint"] == ["/bin/sh", "-ec"]
    (script,) = services["pipeline"]["command"]
    steps = [shlex.split(step) for step in script.split("&&")]
    used = [words[words.index("pipeline") + 1] for words in steps]
    assert used == ["apply", "runners"]
    assert steps[-1][0] == "exec"  # the runners replace the shell, so SIGTERM reaches them
    assert services["pipeline"]["init"] is True
    missing = [u for u in used if u not in names]
    assert missing == [], f"compose runs `pipeline {' / '.join(missing)}` but cli.py has no such command"


def test_pipeline_builds_from_compose_dockerfile(services: dict[str, Any]) -> None:
    build = services["pipeline"]["build"]
    assert build == {"context": "..", "dockerfile": "compose/Dockerfile"}
    context = (COMPOSE_DIR / build["context"]).resolve()
    assert context == ROOT
    assert (context / build["dockerfile"]).is_file()


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_dockerfile_base_user_and_entrypoint() -> None:
    steps = dockerfile_instructions()
    assert steps[0] == ("FROM", "python:3.11-slim")
    users = [arg for op, arg in steps if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert [arg for op, arg in steps if op == "ENTRYPOINT"] == ['["pipeline"]']
    env = " ".join(arg for op, arg in steps if op == "ENV")
    assert "STATE_DIR=/app/.state" in env


def test_dockerfile_copies_exist_and_cover_the_package() -> None:
    sources: list[str] = []
    for op, arg in dockerfile_instructions():
        if op == "COPY":
            words = arg.split()
            assert not any(w.startswith("--from") for w in words)
            sources += words[:-1]
    missing = [s for s in sources if not (ROOT / s).exists()]
    assert missing == [], f"the Dockerfile copies files the repository does not have: {missing}"
    # Everything `pip install .` needs: pyproject, its readme, each package and module it names.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    tool = project["tool"]["setuptools"]
    needed = {"pyproject.toml", project["project"]["readme"]}
    # A subpackage (bootstrap.resources) ships with its parent folder.
    needed |= {f"{p.split('.')[0]}/" for p in tool["packages"]} | {f"{m}.py" for m in tool["py-modules"]}
    assert needed - set(sources) == set()


def test_image_install_ships_every_subpackage() -> None:
    # The image runs a plain (non-editable) `pip install .`: an explicit package list must name subpackages.
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(tool["packages"])
    tops = {init.parent.name for init in ROOT.glob("*/__init__.py")} - {"tests"}
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in tops
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert sorted(on_disk - listed) == [], "add these to [tool.setuptools] packages in pyproject.toml"


def test_env_example_documents_every_variable(raw: dict[str, Any]) -> None:
    documented: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.fullmatch(r"#?([A-Z][A-Z0-9_]*)=(.*)", line.strip())
        if match:
            documented[match.group(1)] = match.group(2)
    used = {m.group(1) for s in strings(raw) for m in VAR.finditer(s)}
    assert {"PORT", "REGION", "LOCALSTACK_AUTH_TOKEN", "MINISTACK_IMAGE"} <= used
    assert sorted(used - set(documented)) == []
    assert documented["LOCALSTACK_AUTH_TOKEN"] == ""
    assert (documented["PORT"], documented["TARGET"]) == ("4566", "compose")


def _compose_plugin() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.parametrize("profile_args", [[], ["--profile", "localstack"]])
def test_docker_compose_config_accepts_the_file(profile_args: list[str]) -> None:
    if not _compose_plugin():
        pytest.skip("the docker compose plugin is not installed (docker compose config needs no engine)")
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(Path.home())}  # no LOCALSTACK_AUTH_TOKEN
    done = subprocess.run(["docker", "compose", "-f", str(COMPOSE_FILE), *profile_args, "config", "-q"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
