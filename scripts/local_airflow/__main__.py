"""Run the embedded Airflow: `python -m scripts.local_airflow [--no-demo]`."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
