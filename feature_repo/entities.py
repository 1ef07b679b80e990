"""Feast entities."""

from feast import Entity
from feast.value_type import ValueType

from core.schema import ENTITY_KEY

customer = Entity(
    name="customer",
    join_keys=[ENTITY_KEY],
    value_type=ValueType.INT64,
    description="A customer of the shop, keyed by its numeric id.",
)
