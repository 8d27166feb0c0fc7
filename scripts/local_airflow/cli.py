"""`python -m scripts.local_airflow`: prepare, start and watch the local Airflow, with a demo incident."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
from pathlib import Path
from typing import Any

from .celery_stack import CeleryAirflow, describe
from .environment import REPO, SIMPLE_AUTH_MANAGER
from .errors import LocalAirflowError
from .processes import ComponentDied
from .stack import LocalAirflow

DEMO_DAG_ID = "incident_response"
DEMO_ALERT = Path("include/sample_alerts/pump_pressure_spike.json")


def port_free(host: str, port: int) -> bool:
    """Return whether a TCP port can be bound on host right now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _say(message: str) -> None:
    """Print one line of progress."""
    print(message, flush=True)


class _Stop(Exception):
    """Raised in the main thread on SIGTERM."""


def _raise_stop(signum: int, frame: Any) -> None:
    """Turn SIGTERM into an exception so the finally block stops the stack."""
    raise _Stop


def _start_demo(stack: LocalAirflow, alert_path: Path, timeout: float) -> None:
    """Unpause the incident_response DAG and trigger one demo incident."""
    _say(f"Waiting for DAG {DEMO_DAG_ID} to be parsed ...")
    try:
        stack.wait_for_dag(DEMO_DAG_ID, timeout, fail_on_import_error=True)
    except (TimeoutError, LocalAirflowError) as err:
        _say(f"DAG {DEMO_DAG_ID} did not appear, so no demo run was started.\n{err}")
        return
    stack.unpause(DEMO_DAG_ID)
    if not alert_path.is_file():
        _say(f"No demo alert at {alert_path} yet; trigger {DEMO_DAG_ID} from the UI instead.")
        return
    try:
        conf = json.loads(alert_path.read_text())
    except ValueError as err:
        _say(f"Demo alert {alert_path} is not valid JSON ({err}); no demo run was started.")
        return
    run = stack.trigger(DEMO_DAG_ID, conf)
    _say(f"Triggered demo incident {alert_path.name}: run {run['dag_run_id']}")


def _print_banner(stack: LocalAirflow, username: str | None) -> None:
    """Print where to go and how to log in."""
    lines = ["", f"Airflow is running: {stack.ui_url}/"]
    if username:
        lines.append(f"  login:     {username} / {stack.passwords()[username]}")
    lines += [
        f"  approvals: {stack.ui_url}/incident-response/",
        f"  passwords: {stack.passwords_file}",
        f"  logs:      {stack.logs_dir}/",
    ]
    if isinstance(stack, CeleryAirflow):
        lines += describe(stack)
    lines += [
        "Press Ctrl-C to stop.",
        "",
    ]
    _say("\n".join(lines))


def _login_user(stack: LocalAirflow) -> str | None:
    """Log in as admin (or the first configured user) when SimpleAuthManager is in use."""
    if stack.env.get("AIRFLOW__CORE__AUTH_MANAGER") != SIMPLE_AUTH_MANAGER:
        return None
    users = stack.passwords()
    username = "admin" if "admin" in users else next(iter(users), None)
    if username:
        stack.login(username)
    return username


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m scripts.local_airflow",
        description="Run Airflow locally with the incident_response DAG.",
    )
    parser.add_argument("--no-demo", action="store_true", help="do not trigger the demo incident")
    parser.add_argument("--alert", type=Path, default=REPO / DEMO_ALERT, help="alert JSON for the demo run")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for start-up")
    parser.add_argument(
        "--celery",
        action="store_true",
        help="CeleryExecutor on PostgreSQL and Redis, with CELERY_WORKERS (default 2) workers",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Prepare, start and watch the local Airflow until Ctrl-C; return the exit code."""
    args = _parse_args(argv)
    home = Path(os.environ.get("AIRFLOW_HOME") or REPO / ".airflow")
    signal.signal(signal.SIGTERM, _raise_stop)
    # Launched from a script, SIGINT may arrive ignored; Ctrl-C must still stop what we start.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    stack: LocalAirflow | None = None
    try:
        stack = CeleryAirflow(home, repo=REPO) if args.celery else LocalAirflow(home, repo=REPO)
        return _run(stack, args)
    except (KeyboardInterrupt, _Stop):
        _say("\nStopping Airflow ...")
        return 0
    except (LocalAirflowError, TimeoutError, OSError) as err:
        _say(f"Error: {err}")
        return 1
    finally:
        # A second Ctrl-C must not interrupt the clean-up and leave processes behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        had_processes = bool(stack and stack.components)
        if stack is not None:
            stack.stop()  # also the embedded database, which prepare() may have started alone
        if had_processes:
            _say("Stopped.")


def _run(stack: LocalAirflow, args: argparse.Namespace) -> int:
    """Start the stack and the demo, then block until a process dies (returns 1) or we are stopped."""
    host = stack.env.get("AIRFLOW__API__HOST", "127.0.0.1")
    if not port_free(host, stack.api_port):
        _say(f"Port {stack.api_port} is in use; choose another, e.g. AIRFLOW__API__PORT=8090 make run")
        return 1
    _say(f"Preparing Airflow in {stack.home} ...")
    stack.prepare()
    *first, last = stack.component_args
    _say(f"Starting {', '.join(first)} and {last} ...")
    stack.start()
    stack.wait_ready(args.timeout)
    _say(f"Airflow is up after {stack.ready_after:.0f}s.")
    username = _login_user(stack)
    if not args.no_demo and username:
        _start_demo(stack, args.alert, args.timeout)
    _print_banner(stack, username)
    died = stack.wait_for_exit()
    _say(str(ComponentDied(died.name, died.process.returncode, died.log_path)))
    _say("Stopping the other processes ...")
    return 1
