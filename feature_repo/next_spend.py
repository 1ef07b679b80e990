"""Feast definitions of the next_spend model: its own view and its feature service.

The ``customer_rhythm`` view reads the Delta table the feature pipeline computes for this
model (``models/next_spend/transforms.py``); its ``Field``s are derived from the
declarations in ``models/next_spend/features.py``. ``next_spend_v1`` serves it with the
shared customer features.
"""

from datetime import timedelta

from data_sources import defined_at_a_fixed_time
from entities import customer
from feast import FeatureService, FeatureView, FileSource
from feast.data_format import DeltaFormat
from feature_views import customer_features, fields_of

from core.schema import CREATED_TIMESTAMP, EVENT_TIMESTAMP
from core.settings import get_settings
from models.next_spend.features import RHYTHM_FEATURES, RHYTHM_TABLE

customer_rhythm_source = defined_at_a_fixed_time(
    FileSource(
        name="customer_rhythm",
        # The table's location follows CHURN_STATE_DIR; reading the environment is all this does.
        path=str(get_settings().storage.delta_table_path(RHYTHM_TABLE)),
        file_format=DeltaFormat(),
        timestamp_field=EVENT_TIMESTAMP,
        created_timestamp_column=CREATED_TIMESTAMP,
        description="Daily order rhythm per customer (Delta, by snapshot_date).",
    )
)

customer_rhythm = FeatureView(
    name="customer_rhythm",
    entities=[customer],
    ttl=timedelta(days=get_settings().feature_ttl_days),
    schema=fields_of(RHYTHM_FEATURES),
    online=True,
    source=customer_rhythm_source,
    tags={"team": "growth", "owner": "ml-platform", "model": "next_spend"},
)

next_spend_v1 = FeatureService(
    name="next_spend_v1",
    features=[customer_features, customer_rhythm],
    description="Shared customer features plus the order rhythm, for next-30-day spend.",
    tags={"model": "customer_next_spend_model"},
)
