"""Feast entities, each derived from its one declaration (``core.schema.EntityKey``).

The shop's customer is declared in ``core/schema.py``; a model on another entity declares
its own (in ``models/<name>/features.py``, which its spec names as ``entity``) and derives
its Feast entity here with :func:`entity_of`, in its own file of this repo.
"""

from feast import Entity
from feast.value_type import ValueType

from core.schema import CUSTOMER, EntityKey

VALUE_TYPES = {"int64": ValueType.INT64, "string": ValueType.STRING}


def entity_of(declared: EntityKey) -> Entity:
    """The Feast entity of a declared entity key: name, join key, type, meaning, owner."""
    return Entity(
        name=declared.name,
        join_keys=[declared.join_key],
        value_type=VALUE_TYPES[declared.dtype],
        description=declared.description,
        owner=declared.owner,
    )


customer = entity_of(CUSTOMER)
