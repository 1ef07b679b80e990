"""The Airflow assets that chain the pipelines (shared by the DAG files, defines no DAG).

``feature_pipeline``'s materialize task updates ``FEATURES_MATERIALIZED``; every model's
monitoring DAG is scheduled on it as well as daily, so fresh features are checked for
drift and live quality at once, and the retraining policy decides whether training runs.
A promotion (the training gate, the live A/B verdict, an automatic rollback) updates the
model's ``champion_changed`` asset, on which its ``<model>_deploy`` DAG is scheduled.
"""

from __future__ import annotations

from airflow.sdk import Asset

FEATURES_MATERIALIZED = Asset("churn://feast/online_store")


def champion_changed(model: str) -> Asset:
    """Updated when ``model``'s ``champion`` alias moves; its ``<model>_deploy`` DAG follows."""
    return Asset(f"churn://registry/{model}/champion")
