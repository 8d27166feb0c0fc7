"""Paths of the Docker deployment, and its scripts loaded as modules (docker/ is no package)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yaml"
DOCKERFILE = REPO / "Dockerfile"
ENV_EXAMPLE = REPO / ".env.example"


def load_script(name: str) -> ModuleType:
    """Import docker/<name>.py under a name that cannot clash with the `docker` client package."""
    spec = importlib.util.spec_from_file_location(f"deploy_{name}", REPO / "docker" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
