"""Print how long the dag-processor takes to parse dags/incident_response.py.

Each trial is a fresh Python process (as the dag-processor's parsing subprocess is): Airflow itself is
imported first and not counted; the figure is DagBag's parse of our file, which includes importing
incident_ops and include for the first time.

    .venv/bin/python bench/bench_dag_parse.py [--trials 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DAG_FILE = REPO / "dags" / "incident_response.py"

PROBE = """
import json, sys, time
import airflow.sdk, airflow.providers.standard.operators.python  # what every DAG file pays anyway
from airflow.dag_processing.dagbag import DagBag
started = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
parse = time.perf_counter() - started
started = time.perf_counter()
DagBag(dag_folder=sys.argv[1])  # modules cached: the cost of the file itself
again = time.perf_counter() - started
print(json.dumps({"parse": parse, "again": again, "errors": len(bag.import_errors), "dags": len(bag.dags)}))
"""


def main() -> None:
    """Run the trials and print median and max."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = {
            **os.environ,
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "plugins")]),
        }
        results = []
        for _ in range(args.trials):
            command = [sys.executable, "-c", PROBE, str(DAG_FILE)]
            out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    assert all(r["errors"] == 0 and r["dags"] == 1 for r in results), results
    first = [r["parse"] * 1000 for r in results]
    again = [r["again"] * 1000 for r in results]
    print(f"dags/incident_response.py, {args.trials} fresh processes")
    for label, values in (("first parse (imports our modules)", first), ("re-parse (modules cached)", again)):
        print(f"  {label:34} median {statistics.median(values):.0f} ms, max {max(values):.0f} ms")


if __name__ == "__main__":
    main()
