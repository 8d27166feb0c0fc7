"""docker-compose.yaml, Dockerfile and .env.example, checked without a Docker engine.

The file is read with PyYAML (anchors and `<<` merges resolved as compose does) and its `${...}`
interpolation is resolved here against a generated `.env`. Where a `docker compose` v2 client exists,
it parses the file too (it needs no engine for `config`).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.specifiers import SpecifierSet

from tests.deploy.helpers import COMPOSE_FILE, DOCKERFILE, ENV_EXAMPLE, REPO, load_script

new_env = load_script("new_env")
airflow_init = load_script("airflow_init")

AIRFLOW_HOME = "/opt/airflow"
AIRFLOW_SERVICES = [
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-init",
]
LONG_RUNNING = ["postgres", "redis", *(s for s in AIRFLOW_SERVICES if s != "airflow-init")]
COMMANDS = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
    # The image's entrypoint runs `python ...` after waiting for the database.
    "airflow-init": ["python", "/opt/incident-response/airflow_init.py"],
}
HEALTHCHECKS = {
    "postgres": "pg_isready --username airflow --dbname airflow",
    "redis": "redis-cli ping",
    "airflow-apiserver": "curl --fail http://localhost:8080/api/v2/monitor/health",
    "airflow-scheduler": "curl --fail http://localhost:8974/health",
    "airflow-dag-processor": 'airflow jobs check --job-type DagProcessorJob --hostname "$${HOSTNAME}"',
    "airflow-triggerer": 'airflow jobs check --job-type TriggererJob --hostname "$${HOSTNAME}"',
    "airflow-worker": (
        "celery --app airflow.providers.celery.executors.celery_executor.app inspect ping "
        '-d "celery@$${HOSTNAME}"'
    ),
}
BACKENDS = {"postgres": "service_healthy", "redis": "service_healthy"}
AFTER_INIT = {**BACKENDS, "airflow-init": "service_completed_successfully"}
DEPENDS_ON = {
    "postgres": {},
    "redis": {},
    "airflow-init": {"postgres": "service_healthy"},
    "airflow-apiserver": AFTER_INIT,
    "airflow-scheduler": AFTER_INIT,
    "airflow-dag-processor": AFTER_INIT,
    "airflow-triggerer": AFTER_INIT,
    # A task calls the Execution API as it starts.
    "airflow-worker": {**AFTER_INIT, "airflow-apiserver": "service_healthy"},
}

# `$$` is an escaped dollar; `${NAME<op><arg>}` and `$NAME` are interpolated by compose.
INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)
REQUIRED_OPS = (":?", "?")
SECRET_NAME = re.compile(r"JWT|SECRET|FERNET|PASSWORD|TOKEN|KEY", re.IGNORECASE)
URL_PASSWORD = re.compile(r"://[^/\s:@]+:(?P<password>[^@\s]*)@")


# -- reading the file ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def dot_env() -> dict[str, str]:
    """The values a user's `.env` holds after `python3 docker/new_env.py`."""
    return new_env.fresh_secrets()


def interpolate(text: str, env: dict[str, str]) -> str:
    """Resolve compose interpolation the way compose does (`:?` missing raises)."""

    def one(match: re.Match) -> str:
        if match["escaped"]:
            return "$"
        name = match["name"] or match["bare"]
        value, op, arg = env.get(name), match["op"] or "", match["arg"]
        if op in (":?", "?") and (value is None or (op == ":?" and value == "")):
            raise LookupError(f"required variable {name} is missing a value: {arg}")
        if op == ":-" and not value or op == "-" and value is None:
            return arg
        return value or ""

    return INTERPOLATION.sub(one, text)


def environment(service: dict) -> dict[str, str | None]:
    """Return a service's environment as a mapping (the list form too)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) if "=" in item else (item, None) for item in env)
        return {key: value for key, value in pairs}
    return {key: None if value is None else str(value) for key, value in env.items()}


def walk_strings(node, where: str = ""):
    """Yield (path, text) for every string in the document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk_strings(value, f"{where}.{key}" if where else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk_strings(value, f"{where}[{index}]")
    elif isinstance(node, str):
        yield where, node


def environments(document: dict):
    """Yield (owner, mapping) for the common anchor and every service."""
    for owner, block in document.items():
        if owner.startswith("x-") and isinstance(block, dict):
            yield owner, environment(block)
    for name, service in (document.get("services") or {}).items():
        yield name, environment(service)


def healthcheck_command(service: dict) -> str:
    test = service["healthcheck"]["test"]
    if isinstance(test, str):
        return test
    kind, *rest = test
    assert kind in ("CMD", "CMD-SHELL"), test
    return " ".join(rest)


def secret_problems(document: dict) -> list[str]:
    """Every place where a secret could come from somewhere other than the user's .env."""
    problems = []
    for where, text in walk_strings(document):
        tokens: list[re.Match] = []

        def mask(match: re.Match, tokens=tokens) -> str:
            tokens.append(match)
            return f"\0{len(tokens) - 1}\0"

        masked = INTERPOLATION.sub(mask, text)
        for match in tokens:
            name = match["name"] or match["bare"]
            if name and SECRET_NAME.search(name) and match["op"] not in REQUIRED_OPS:
                problems.append(f"{where}: {match[0]!r} lets {name} fall back to a value")
        for found in URL_PASSWORD.finditer(masked):
            token = re.fullmatch(r"\0(\d+)\0", found["password"])
            if not token or tokens[int(token[1])]["op"] not in REQUIRED_OPS:
                problems.append(f"{where}: a URL carries a password that is not a required variable")
    for owner, env in environments(document):
        for key, value in env.items():
            # A path to a secret is not one; a key with no value is passed through from .env.
            if not SECRET_NAME.search(key) or key.endswith("_FILE") or value is None:
                continue
            match = INTERPOLATION.fullmatch(value)
            if not match or match["op"] not in REQUIRED_OPS:
                problems.append(f"{owner}.environment.{key}: {value!r} is not a required variable")
    return problems


def required_variables(document: dict) -> set[str]:
    return {
        match["name"]
        for _, text in walk_strings(document)
        for match in INTERPOLATION.finditer(text)
        if match["op"] in REQUIRED_OPS
    }


def example_settings() -> tuple[dict[str, str], set[str]]:
    """Return .env.example's active settings and the names it mentions in comments (optional ones)."""
    active, mentioned = {}, set()
    for line in ENV_EXAMPLE.read_text().splitlines():
        if found := re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", line):
            active[found[1]] = found[2]
        elif found := re.fullmatch(r"#\s*([A-Z_][A-Z0-9_]*)=.*", line):
            mentioned.add(found[1])
    return active, mentioned


# -- services, commands, health, order -------------------------------------------------------------


def test_services_are_the_celery_topology(services: dict) -> None:
    assert set(services) == set(LONG_RUNNING) | {"airflow-init"}


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_airflow_services_share_the_common_definition(compose: dict, services: dict, name: str) -> None:
    common = compose["x-airflow-common"]
    service = services[name]
    assert service["build"] == common["build"] == "."
    assert service["image"] == common["image"]
    # A service that sets its own environment must still carry every common setting, unchanged.
    env = environment(service)
    for key, value in environment(common).items():
        assert key in env and env[key] == value, f"{name} lost or changed {key}"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command(services: dict, name: str) -> None:
    assert services[name]["command"] == COMMANDS[name]


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_services_have_healthchecks_and_restart(services: dict, name: str) -> None:
    service = services[name]
    assert healthcheck_command(service) == HEALTHCHECKS[name]
    for field in ("interval", "timeout", "retries", "start_period"):
        assert field in service["healthcheck"], f"{name}: healthcheck without {field}"
    assert service.get("restart") == "always"


def test_healthchecks_escape_the_container_hostname(compose: dict) -> None:
    # `${HOSTNAME}` unescaped would be replaced by the host's name when compose reads the file.
    for where, text in walk_strings(compose):
        for match in INTERPOLATION.finditer(text):
            assert (match["name"] or match["bare"]) != "HOSTNAME", f"{where}: write $${{HOSTNAME}}"


def test_scheduler_healthcheck_server_is_enabled(compose: dict) -> None:
    env = environment(compose["x-airflow-common"])
    assert env["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "true"


@pytest.mark.parametrize("name", sorted(DEPENDS_ON))
def test_dependencies_and_conditions(services: dict, name: str) -> None:
    depends_on = services[name].get("depends_on") or {}
    assert isinstance(depends_on, dict), f"{name}: depends_on without conditions"
    assert {dep: spec["condition"] for dep, spec in depends_on.items()} == DEPENDS_ON[name]


def test_conditions_can_be_met(services: dict) -> None:
    for name, service in services.items():
        for dep, spec in (service.get("depends_on") or {}).items():
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep}'s health, which has none"
            if spec["condition"] == "service_completed_successfully":
                # A one-off that restarts never completes.
                assert services[dep].get("restart", "no") == "no", f"{dep} must run once"


def test_init_runs_as_root_only_to_hand_over_volumes(services: dict, compose: dict) -> None:
    assert services["airflow-init"]["user"] == "0:0"
    assert compose["x-airflow-common"]["user"] == "${AIRFLOW_UID:-50000}:0"
    for name in AIRFLOW_SERVICES[:-1]:
        assert services[name]["user"] == compose["x-airflow-common"]["user"]


# -- what a Celery deployment needs ----------------------------------------------------------------


def test_common_environment_has_every_celery_setting(compose: dict, services: dict, dot_env) -> None:
    env = {k: interpolate(v, dot_env) for k, v in environment(compose["x-airflow-common"]).items() if v}
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"

    broker = urlsplit(env["AIRFLOW__CELERY__BROKER_URL"])
    assert (broker.scheme, broker.hostname) == ("redis", "redis") and "redis" in services

    metadata = urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    backend = urlsplit(env["AIRFLOW__CELERY__RESULT_BACKEND"])
    assert metadata.scheme.startswith("postgresql") and metadata.hostname == "postgres"
    # Celery's database result backend, on the metadata database itself.
    assert backend.scheme == "db+postgresql"
    assert (backend.hostname, backend.port, backend.path) == (metadata.hostname, metadata.port, metadata.path)
    assert backend.password == metadata.password == dot_env["POSTGRES_PASSWORD"]

    # One JWT secret, API secret key and Fernet key for every container, from .env.
    for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__CORE__FERNET_KEY"):
        assert env[key] == dot_env[key]

    # Tasks on the workers reach the api-server service over the compose network, on its container port.
    execution = urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    container_port = int(services["airflow-apiserver"]["ports"][0].rsplit(":", 1)[1])
    assert (execution.scheme, execution.hostname, execution.port) == (
        "http",
        "airflow-apiserver",
        container_port,
    )
    assert execution.path == "/execution/"
    assert f"localhost:{container_port}" in healthcheck_command(services["airflow-apiserver"])

    base_url = urlsplit(env["AIRFLOW__API__BASE_URL"])
    assert base_url.scheme in ("http", "https") and base_url.hostname


def test_incident_store_is_its_own_postgres_database(compose: dict, dot_env) -> None:
    env = {k: interpolate(v, dot_env) for k, v in environment(compose["x-airflow-common"]).items() if v}
    store = airflow_init.store_target(env["AIRFLOW_CONN_INCIDENT_STORE"])
    metadata = airflow_init.admin_target(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert store["host"] == metadata["host"] == "postgres"
    assert store["dbname"] != metadata["dbname"] and store["user"] != metadata["user"]
    assert store["password"] == dot_env["INCIDENT_STORE_PASSWORD"]
    # The product reads the connection with Airflow's URI rules: its type must be one the hook accepts.
    from airflow.models.connection import Connection

    from incident_ops.hooks.incident_store import url_for

    conn = Connection(conn_id="incident_store", uri=env["AIRFLOW_CONN_INCIDENT_STORE"])
    assert url_for(conn).startswith("postgresql+psycopg2://incident_store:")


def test_users_are_the_ones_make_run_creates(compose: dict) -> None:
    from scripts.local_airflow import DEFAULT_USERS, SIMPLE_AUTH_MANAGER

    env = environment(compose["x-airflow-common"])
    assert env["AIRFLOW__CORE__AUTH_MANAGER"] == SIMPLE_AUTH_MANAGER
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == DEFAULT_USERS
    # On the volume airflow-init writes to and the api-server reads.
    passwords = env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
    assert passwords.startswith(f"{AIRFLOW_HOME}/config/")


def test_product_settings_pass_through_without_defaults(compose: dict) -> None:
    env = environment(compose["x-airflow-common"])
    for key in ("AIRFLOW_CONN_SLACK_API_DEFAULT", "AIRFLOW_CONN_LLM_DEFAULT", "SLACK_SIGNING_SECRET"):
        assert key in env and env[key] is None, f"{key} must be passed through as it is, or left unset"
    assert "INCIDENT_WEBHOOK_TOKEN" in env and env["INCIDENT_WEBHOOK_TOKEN"] is None


# -- secrets ---------------------------------------------------------------------------------------


def test_no_secret_has_a_default(compose: dict) -> None:
    assert secret_problems(compose) == []


@pytest.mark.parametrize(
    "document",
    [
        {"services": {"s": {"environment": {"AIRFLOW__API_AUTH__JWT_SECRET": "${JWT_SECRET:-dev-secret}"}}}},
        {"services": {"s": {"environment": {"AIRFLOW__API__SECRET_KEY": "${API_SECRET_KEY-dev}"}}}},
        {"services": {"s": {"environment": {"AIRFLOW__CORE__FERNET_KEY": "${AIRFLOW_FERNET_KEY}"}}}},
        {"services": {"s": {"environment": {"DB_PASSWORD": "hunter2"}}}},
        {"services": {"s": {"environment": ["INCIDENT_WEBHOOK_TOKEN=abc"]}}},
        {"x-common": {"environment": {"SQL": "postgresql://airflow:airflow@postgres/airflow"}}},
        {"x-common": {"environment": {"SQL": "postgresql://airflow:${POSTGRES_PASSWORD:-airflow}@db/a"}}},
        {"services": {"s": {"command": "run --token $SLACK_TOKEN"}}},
    ],
)
def test_secret_check_catches_a_default(document: dict) -> None:
    assert secret_problems(document)


def test_secrets_are_required_with_a_message_that_says_how(compose: dict) -> None:
    required = required_variables(compose)
    assert required >= {
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__API__SECRET_KEY",
        "AIRFLOW__CORE__FERNET_KEY",
        "POSTGRES_PASSWORD",
        "INCIDENT_STORE_PASSWORD",
    }
    for _, text in walk_strings(compose):
        for match in INTERPOLATION.finditer(text):
            if match["op"] in REQUIRED_OPS:
                assert "docker/new_env.py" in match["arg"] and ".env.example" in match["arg"], match[0]
    # Without .env, nothing starts: the first required variable stops compose with its message.
    with pytest.raises(LookupError, match="required variable POSTGRES_PASSWORD is missing a value: run"):
        interpolate(environment(compose["services"]["postgres"])["POSTGRES_PASSWORD"], {})


def test_env_example_lists_every_required_variable_without_a_value(compose: dict) -> None:
    active, _ = example_settings()
    required = required_variables(compose)
    assert required <= set(active), f"missing from .env.example: {sorted(required - set(active))}"
    assert all(active[name] == "" for name in required), "no secret value belongs in a committed file"


def test_env_example_mentions_every_setting_the_file_reads(compose: dict) -> None:
    active, mentioned = example_settings()
    read = {
        match["name"] or match["bare"]
        for _, text in walk_strings(compose)
        for match in INTERPOLATION.finditer(text)
        if not match["escaped"]
    }
    passed_through = {key for _, env in environments(compose) for key, value in env.items() if value is None}
    assert (read | passed_through) - set(active) - mentioned == set()


def test_env_example_commands_generate_usable_secrets(compose: dict) -> None:
    """Run the command written above each required variable, and check what it prints."""
    lines = ENV_EXAMPLE.read_text().splitlines()
    generated = {}
    for index, line in enumerate(lines):
        name = line.split("=", 1)[0]
        if name not in required_variables(compose):
            continue
        commands = [c.strip("# ").strip() for c in lines[:index] if c.strip("# ").startswith("python3 -c ")]
        assert commands, f"no command to generate {name} in .env.example"
        argv = shlex.split(commands[-1])
        result = subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True, check=True)
        generated[name] = result.stdout.strip()
    assert airflow_init.check_settings(generated) == []
    assert set(generated) == set(airflow_init.REQUIRED)


def test_new_env_writes_every_required_variable(tmp_path: Path, compose: dict) -> None:
    target = tmp_path / ".env"
    assert new_env.main(["--output", str(target)]) == 0
    values = dict(line.split("=", 1) for line in target.read_text().splitlines() if not line.startswith("#"))
    assert set(values) == required_variables(compose)
    assert airflow_init.check_settings(values) == []
    assert target.stat().st_mode & 0o777 == 0o600
    # A second run must not replace the keys that encrypt what is already stored.
    before = target.read_text()
    assert new_env.main(["--output", str(target)]) == 1
    assert target.read_text() == before
    assert new_env.fresh_secrets() != new_env.fresh_secrets()


def test_dot_env_is_git_ignored_and_the_example_is_not() -> None:
    git = shutil.which("git")
    if not git or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    assert subprocess.run([git, "check-ignore", "-q", ".env"], cwd=REPO).returncode == 0
    assert subprocess.run([git, "check-ignore", "-q", ".env.example"], cwd=REPO).returncode == 1


# -- ports, scaling, mounts ------------------------------------------------------------------------


def host_bindings(service: dict, env: dict[str, str]) -> list[tuple[str | None, str]]:
    """Return (host ip, host port) for each published port."""
    bindings = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            bindings.append((port.get("host_ip"), str(port.get("published"))))
            continue
        parts = interpolate(str(port), env).split("/")[0].split(":")
        if len(parts) == 3:
            bindings.append((parts[0], parts[1]))
        else:
            bindings.append((None, parts[0]))
    return bindings


def test_published_ports_are_on_loopback_only(services: dict, dot_env) -> None:
    published = {name: host_bindings(service, dot_env) for name, service in services.items()}
    assert published["airflow-apiserver"] == [("127.0.0.1", "8080")]
    for name, bindings in published.items():
        for host_ip, _ in bindings:
            assert host_ip == "127.0.0.1", f"{name} publishes a port beyond this machine"
    # The databases stay on the compose network.
    assert published["postgres"] == published["redis"] == []


def test_workers_scale(services: dict) -> None:
    worker = services["airflow-worker"]
    for fixed in ("container_name", "hostname", "ports"):
        assert fixed not in worker, f"a fixed {fixed} stops `--scale airflow-worker=3`"
    assert all("container_name" not in service for service in services.values())


def test_mounted_host_paths_exist(compose: dict, services: dict) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for volume in service.get("volumes") or []:
            source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
            if source.startswith((".", "/")):
                path = (COMPOSE_FILE.parent / source).resolve()
                assert path.exists(), f"{name} mounts {source}, which is not in the repository"
                assert path.is_relative_to(REPO)
            else:
                assert source in declared, f"{name} uses the undeclared volume {source}"


@pytest.mark.parametrize("name", [s for s in AIRFLOW_SERVICES if s != "airflow-init"])
def test_code_is_mounted_where_airflow_and_python_look(services: dict, name: str) -> None:
    mounts = dict(v.split(":")[:2] for v in services[name]["volumes"] if isinstance(v, str))
    for folder in ("dags", "plugins", "include"):
        assert mounts.get(f"./{folder}") == f"{AIRFLOW_HOME}/{folder}", f"{name} lacks {folder}/"
    env = environment(services[name])
    # Airflow's defaults are $AIRFLOW_HOME/dags and /plugins; include/'s parent must be importable.
    assert "AIRFLOW__CORE__DAGS_FOLDER" not in env and "AIRFLOW__CORE__PLUGINS_FOLDER" not in env
    assert str(Path(mounts["./include"]).parent) in env["PYTHONPATH"].split(":")


def test_init_mounts_its_script(services: dict) -> None:
    mounts = dict(v.split(":")[:2] for v in services["airflow-init"]["volumes"])
    assert mounts["./docker/airflow_init.py"] == COMMANDS["airflow-init"][1]


# -- the image -------------------------------------------------------------------------------------


def test_dockerfile_pins_the_locked_airflow_and_python() -> None:
    dockerfile = DOCKERFILE.read_text()
    froms = re.findall(r"^FROM\s+(\S+)", dockerfile, re.MULTILINE)
    assert len(froms) == 1
    found = re.fullmatch(r"apache/airflow:(?P<airflow>\d+\.\d+\.\d+)-python(?P<python>\d+\.\d+)", froms[0])
    assert found, froms[0]
    locked = re.search(r"^apache-airflow==(\S+)$", (REPO / "requirements.txt").read_text(), re.MULTILINE)
    assert found["airflow"] == locked[1]
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert f"{found['python']}.0" in SpecifierSet(requires)


def test_dockerfile_installs_the_lock_as_the_airflow_user() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines() if not line.startswith("#")]
    text = "\n".join(lines).replace("\\\n", " ")
    instructions = [line for line in text.splitlines() if line]
    users = [i for i, line in enumerate(instructions) if line.startswith("USER ")]
    installs = [i for i, line in enumerate(instructions) if "pip install" in line]
    assert installs and users and instructions[users[-1]] == "USER airflow" and users[-1] < installs[0]
    install = instructions[installs[0]]
    assert re.search(r"COPY\b.*\brequirements\.txt\s+/requirements\.txt", text)
    assert "-r /requirements.txt" in install
    # Pip refuses rather than swaps Airflow when the lock and the image disagree.
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in install


# -- docker compose itself, where the client exists ----------------------------------------------


def compose_client() -> list[str] | None:
    """Return the argv of a docker compose v2 client, or None."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    if standalone:
        version = subprocess.run([standalone, "version", "--short"], capture_output=True, text=True)
        if version.returncode == 0 and version.stdout.strip().lstrip("v").startswith("2"):
            return [standalone]
    return None


def run_compose_config(tmp_path: Path, env_file: Path) -> subprocess.CompletedProcess:
    client = compose_client()
    if client is None:
        pytest.skip("no docker compose v2 client on this machine")
    # Only what the user's .env holds: nothing from this shell may fill a variable in.
    clean = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path)}
    argv = [*client, "--project-directory", str(REPO), "-f", str(COMPOSE_FILE), "--env-file", str(env_file)]
    return subprocess.run(
        [*argv, "config", "--format", "json"], capture_output=True, text=True, env=clean, timeout=60
    )


def test_docker_compose_accepts_the_file_with_a_generated_env(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    values = new_env.write_env(env_file)
    result = run_compose_config(tmp_path, env_file)
    assert result.returncode == 0, result.stderr
    resolved = json.loads(result.stdout)["services"]
    for name in AIRFLOW_SERVICES:
        env = resolved[name]["environment"]
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == values["AIRFLOW__API_AUTH__JWT_SECRET"]
        assert env["AIRFLOW__CORE__FERNET_KEY"] == values["AIRFLOW__CORE__FERNET_KEY"]
    assert "ports" not in resolved["airflow-worker"]
    assert [p["host_ip"] for p in resolved["airflow-apiserver"]["ports"]] == ["127.0.0.1"]


def test_docker_compose_refuses_without_secrets(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("")
    result = run_compose_config(tmp_path, env_file)
    assert result.returncode != 0
    assert "is missing a value" in result.stderr and "docker/new_env.py" in result.stderr
