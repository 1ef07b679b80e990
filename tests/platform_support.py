"""Helpers shared by test modules: run the feature pipeline for every declared model."""

from __future__ import annotations

from core.settings import Settings
from core.steps import FeaturePipelineRun


def feature_services() -> list[str]:
    """The feature services of every model spec (what the feature_pipeline DAG materializes)."""
    from models.catalog import load_specs

    return [spec.feature_service for spec in load_specs()]


def run_features(settings: Settings) -> FeaturePipelineRun:
    """The feature pipeline for every model spec, as the feature_pipeline DAG runs it."""
    from data import pipeline
    from models.catalog import load_specs

    specs = load_specs()
    return pipeline.run_feature_pipeline(
        settings,
        feature_services=[spec.feature_service for spec in specs],
        tables=[table for spec in specs for table in spec.feature_tables],
    )
