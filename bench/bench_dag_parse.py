"""Benchmark the parse of dags/incident_response.py against a DAG file of the same shape.

    .venv/bin/python bench/bench_dag_parse.py [--trials 10]

Each trial is a fresh Python process (as a task process or the dag-processor's parsing subprocess
is). Airflow's SDK, the standard provider's operator modules and DagBag are imported first and not
counted: both files pay them alike. The figure is DagBag's parse of the file, which for ours includes
importing incident_ops and include for the first time. The anchor is generated next to it: a DAG of
the same shape (as many tasks, PythonOperators and BranchPythonOperators on no-op callables, the same
edges, retries set, a few Params). Trials alternate between the two files. Prints the figures and
writes bench/results/dag_parse.json; target: ours / anchor <= 1.5.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import REPO, comparison, distribution, print_table, write_result

DAG_FILE = REPO / "dags" / "incident_response.py"
TARGET = 1.5

PROBE = """
import json, sys, time
import airflow.sdk  # what every DAG file pays anyway, with the standard operators' modules
import airflow.providers.standard.operators.python, airflow.providers.standard.operators.empty
from airflow.dag_processing.dagbag import DagBag
started = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
parse = time.perf_counter() - started
started = time.perf_counter()
DagBag(dag_folder=sys.argv[1])  # modules cached: the cost of the file itself
again = time.perf_counter() - started
tasks = [task for dag in bag.dags.values() for task in dag.tasks]
edges = {task.task_id: sorted(task.downstream_task_ids) for task in tasks}
branches = sorted(task.task_id for task in tasks if "Branch" in type(task).__name__)
print(json.dumps({"parse": parse, "again": again, "errors": len(bag.import_errors), "dags": len(bag.dags),
                  "tasks": len(tasks), "edges": edges, "branches": branches}))
"""

ANCHOR = '''"""Benchmark anchor: the incident DAG's shape on no-op callables, nothing else."""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.operators.python import BranchPythonOperator, PythonOperator
from airflow.sdk import DAG, Param

EDGES = {edges!r}
BRANCHES = {branches!r}


def noop(**_):
    return None


with DAG(
    dag_id="same_shape_bench",
    schedule=None,
    catchup=False,
    params={{"device_id": Param(type="string"), "error": Param(type="string")}},
):
    tasks = {{
        task_id: (BranchPythonOperator if task_id in BRANCHES else PythonOperator)(
            task_id=task_id, python_callable=noop, retries=3, retry_delay=timedelta(seconds=5)
        )
        for task_id in EDGES
    }}
    for task_id, downstream in EDGES.items():
        for other in downstream:
            tasks[task_id] >> tasks[other]
'''


def probe(path: Path, env: dict[str, str]) -> dict:
    """Parse one file in a fresh process and return the probe's figures."""
    command = [sys.executable, "-c", PROBE, str(path)]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["errors"] or result["dags"] != 1:
        raise SystemExit(f"{path.name} did not parse into one DAG: {result}")
    return result


def main() -> None:
    """Run the trials, print the table, write the JSON."""
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
        shape = probe(DAG_FILE, env)  # also warms the disk cache for both sides
        tasks = shape["tasks"]
        anchor = Path(home) / "same_shape_bench.py"
        anchor.write_text(ANCHOR.format(edges=shape["edges"], branches=shape["branches"]))
        probe(anchor, env)
        runs: dict[str, list[dict]] = {"ours": [], "anchor": []}
        for _ in range(args.trials):
            runs["ours"].append(probe(DAG_FILE, env))
            runs["anchor"].append(probe(anchor, env))
    assert runs["anchor"][0]["edges"] == shape["edges"], "the anchor must have our DAG's shape"
    figures = {
        side: {
            "first_parse_ms": distribution([r["parse"] * 1000 for r in results]),
            "re_parse_ms": distribution([r["again"] * 1000 for r in results]),
        }
        for side, results in runs.items()
    }
    print(
        f"dags/incident_response.py ({tasks} tasks) against a DAG of the same shape on no-op callables, "
        f"{args.trials} fresh processes"
    )
    rows = []
    for side, label in (("ours", "incident_response.py"), ("anchor", f"same shape, {tasks} tasks")):
        first, again = figures[side]["first_parse_ms"], figures[side]["re_parse_ms"]
        rows.append([label, first["median"], first["p95"], again["median"]])
    print_table(rows, ["file", "first parse median ms", "p95 ms", "re-parse median ms"])
    ours, anchor_ms = (figures[s]["first_parse_ms"]["median"] for s in ("ours", "anchor"))
    row = comparison("Parse", "first parse, median", ours, anchor_ms, f"<= {TARGET}x", unit="ms")
    print(f"ratio {row['ratio']:.2f}x (target <= {TARGET}x)")
    write_result(
        "dag_parse", {"tasks": tasks, "trials": args.trials, "figures": figures, "comparisons": [row]}
    )


if __name__ == "__main__":
    main()
