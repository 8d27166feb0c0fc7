"""LocalAirflow's kill: SIGKILL a process and everything it forked, its own process groups included."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from scripts.local_airflow.polling import poll
from scripts.local_airflow.processes import Component, descendants, kill, pid_alive

# A parent that forks a grandchild into its own session (as Airflow's task processes do), then waits.
_FORKER = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
time.sleep(60)
"""


def test_kill_takes_the_whole_tree_at_once(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-c", _FORKER], start_new_session=True)
    component = Component("forker", process, tmp_path / "forker.log")
    [grandchild] = poll(lambda: list(descendants([process.pid])) or None, 10, "the grandchild to start")
    stopped: set[int] = set()

    kill([component], stopped)

    assert process.returncode == -9  # SIGKILL: no chance to clean up
    assert not pid_alive(grandchild)
    assert stopped == {process.pid, grandchild}
