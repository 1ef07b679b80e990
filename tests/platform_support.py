"""Helpers shared by test modules: run the feature pipeline for every declared model, and
see which tools a fresh interpreter imports."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence

from core.settings import Settings
from core.steps import FeaturePipelineRun


def feature_services() -> list[str]:
    """The feature services of every model spec (what the feature_pipeline DAG materializes)."""
    from models.catalog import feature_services as declared

    return declared()


def run_features(settings: Settings) -> FeaturePipelineRun:
    """The feature pipeline for every model spec, as the feature_pipeline DAG runs it."""
    from models.feature_pipeline import run_feature_pipeline

    return run_feature_pipeline(settings)


def tools_imported_by(statements: str, tools: Sequence[str]) -> list[str]:
    """Which of ``tools`` (top-level modules) a fresh interpreter has imported after running
    ``statements``; a statement that fails (an assert, an import error) fails the call."""
    report = f"print(json.dumps([m for m in {list(tools)!r} if m in sys.modules]))"
    out = subprocess.run(
        [sys.executable, "-c", f"import json, sys\n{statements}\n{report}\n"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])
