"""Feast feature services: the versioned feature sets models are trained and served on."""

from feast import FeatureService
from feature_views import customer_features

customer_features_v1 = FeatureService(
    name="customer_features_v1",
    features=[customer_features],
    description="The six customer features of the churn model.",
    tags={"model": "customer_churn_model"},
)
