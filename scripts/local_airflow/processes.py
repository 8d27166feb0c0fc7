"""Start the Airflow processes in their own process groups, watch them, and stop them with what they fork."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import LocalAirflowError
from .files import tail

# The log servers would bind every interface on fixed ports (8793/8794) and clash between two stacks;
# on one machine the API server reads the task and trigger log files directly, so they are not needed.
COMPONENTS: dict[str, tuple[str, ...]] = {
    "api-server": ("api-server",),
    "scheduler": ("scheduler", "--skip-serve-logs"),
    "dag-processor": ("dag-processor",),
    "triggerer": ("triggerer", "--skip-serve-logs"),
}

# Runs `airflow <args>` after asking Linux to SIGTERM it when its parent (us) dies, so a test runner
# killed outright still leaves no Airflow behind. Linux ties this to the thread that started the
# child: call start() from the main thread or one that outlives the stack.
_LAUNCHER = """
import ctypes, os, signal, sys
try:
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
except (OSError, AttributeError):
    pass  # not Linux: rely on stop()
if os.getppid() != int(sys.argv[1]):
    sys.exit(1)  # the parent died before prctl took effect
os.execv(sys.executable, [sys.executable, "-m", "airflow", *sys.argv[2:]])
"""


class ComponentDied(LocalAirflowError):
    """Raised when one of the Airflow processes exits while it should be running."""

    def __init__(self, name: str, returncode: int | None, log_path: Path) -> None:
        self.name = name
        self.returncode = returncode
        self.log_path = log_path
        super().__init__(
            f"airflow {name} exited with code {returncode}; last lines of {log_path}:\n{tail(log_path)}"
        )


@dataclass
class Component:
    """One Airflow process started by LocalAirflow."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        """Return the process id (also its process group id)."""
        return self.process.pid

    def alive(self) -> bool:
        """Return whether the process is still running."""
        return self.process.poll() is None


def airflow_command(*args: str) -> list[str]:
    """Return the command line running `airflow <args>` through the launcher."""
    return [sys.executable, "-c", _LAUNCHER, str(os.getpid()), *args]


def spawn(
    name: str, args: Iterable[str], env: Mapping[str, str], home: Path, log_path: Path, *, append: bool
) -> Component:
    """Start one `airflow <args>` in home with its output in log_path."""
    with log_path.open("ab" if append else "wb") as log:
        process = subprocess.Popen(
            airflow_command(*args),
            env=dict(env),
            cwd=home,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Own session and group: a terminal's Ctrl-C reaches only us, and stop() can signal
            # each component together with the workers and parsers it forks.
            start_new_session=True,
        )
    return Component(name, process, log_path)


def terminate(components: list[Component], timeout: float, stopped: set[int]) -> None:
    """Stop components and what they forked (SIGTERM, wait, SIGKILL); add every id signalled to stopped."""
    roots = [c.pid for c in components]
    # Task processes put themselves in their own process groups, so remember every descendant
    # now, before dying parents hand them over to init where we could no longer find them.
    tracked = descendants(roots)
    stopped |= set(roots) | set(tracked)
    for component in components:
        _signal_group(component.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for component in components:
        _wait(component.process, deadline)
    tracked.update(descendants(list(tracked)))
    stopped |= set(tracked)
    for component in components:
        _signal_group(component.pid, signal.SIGKILL)
        _wait(component.process, time.monotonic() + 5)
    for pid, started in tracked.items():
        _signal_pid(pid, started, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(pid_alive(pid) for pid in tracked) and time.monotonic() < deadline:
        time.sleep(0.1)


def kill(components: list[Component], stopped: set[int]) -> None:
    """SIGKILL components and everything they forked at once, as a crash or the OOM killer would."""
    roots = [c.pid for c in components]
    tracked = descendants(roots)
    stopped |= set(roots) | set(tracked)
    # Freeze the whole tree first: nobody sees a parent die (PR_SET_PDEATHSIG) and shuts down cleanly.
    for pid in roots:
        _signal_group(pid, signal.SIGSTOP)
    for pid, started in tracked.items():
        _signal_pid(pid, started, signal.SIGSTOP)
    for pid, started in tracked.items():
        _signal_pid(pid, started, signal.SIGKILL)
    for component in components:
        _signal_group(component.pid, signal.SIGKILL)
        _wait(component.process, time.monotonic() + 10)
    deadline = time.monotonic() + 10
    while any(pid_alive(pid) for pid in tracked) and time.monotonic() < deadline:
        time.sleep(0.1)


def _proc_stat(pid: int) -> tuple[str, int, str] | None:
    """Return (state, parent pid, start time) of a process from /proc, or None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may contain spaces and parentheses; the fields follow the last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), fields[19]


def descendants(roots: Iterable[int]) -> dict[int, str]:
    """Return {pid: start time} of every live descendant of roots (empty without /proc)."""
    children: dict[int, list[int]] = {}
    starts: dict[int, str] = {}
    proc = Path("/proc")
    for entry in proc.iterdir() if proc.is_dir() else ():
        if entry.name.isdigit() and (stat := _proc_stat(int(entry.name))) is not None:
            children.setdefault(stat[1], []).append(int(entry.name))
            starts[int(entry.name)] = stat[2]
    found: dict[int, str] = {}
    pending = list(roots)
    while pending:
        for child in children.get(pending.pop(), []):
            if child not in found:
                found[child] = starts[child]
                pending.append(child)
    return found


def pid_alive(pid: int) -> bool:
    """Return whether a process exists and is not a zombie."""
    stat = _proc_stat(pid)
    if stat is not None:
        return stat[0] != "Z"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not Path("/proc").is_dir()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    """Signal a process group, ignoring one that is already gone."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_pid(pid: int, started: str, sig: signal.Signals) -> None:
    """Signal a process only if it is still the one we saw (pids get reused)."""
    stat = _proc_stat(pid)
    if stat is not None and stat[2] == started:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _wait(process: subprocess.Popen[bytes], deadline: float) -> None:
    """Wait for a child until the deadline, without raising."""
    try:
        process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
