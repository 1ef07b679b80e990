"""Helpers shared by test modules: run the feature pipeline for every declared model."""

from __future__ import annotations

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
