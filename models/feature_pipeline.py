"""The feature pipeline for every declared model, as the ``feature_pipeline`` DAG runs it.

The steps are :mod:`data.pipeline`'s; what they run over (the landing sources, the
models' feature and label tables, their feature services) comes from the specs
(:mod:`models.catalog`).
For the CLI, tests and benchmarks, which run the four steps in one process.
"""

from __future__ import annotations

from datetime import datetime

from core import clock
from core.settings import Settings
from core.steps import FeaturePipelineRun


def run_feature_pipeline(settings: Settings, as_of: datetime | None = None) -> FeaturePipelineRun:
    """Validate, ingest, build and materialize for every model spec, as of ``as_of``
    (default: the platform's clock)."""
    from data import pipeline
    from models.catalog import computed_tables, feature_services, landing_sources

    return pipeline.run_feature_pipeline(
        settings,
        feature_services=feature_services(),
        tables=computed_tables(),
        sources=landing_sources(),
        as_of=as_of or clock.now(settings),
    )
