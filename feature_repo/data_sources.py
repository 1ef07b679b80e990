"""Feast data sources: the Delta table written by the feature pipeline, and its push source."""

from feast import FileSource, PushSource
from feast.data_format import DeltaFormat

from feature_repo.settings import get_settings

customer_snapshots_source = FileSource(
    name="customer_snapshots",
    # The table's location follows CHURN_STATE_DIR; reading the environment is all this does.
    path=str(get_settings().customer_features_path),
    file_format=DeltaFormat(),
    timestamp_field="event_timestamp",
    created_timestamp_column="created_timestamp",
    description="Daily customer snapshots computed from raw orders (Delta, by snapshot_date).",
)

customer_snapshots_push = PushSource(
    name="customer_snapshots_push",
    batch_source=customer_snapshots_source,
    description="Fresh snapshots pushed online when an order arrives between batch runs.",
)
