"""Where a model's entities are listed: the Delta tables behind its feature service's views.

A spec names its feature service; Feast's registry knows the views that service reads,
each view's join key and its type, and the table each view's batch source reads. Those
tables list the model's entities, so nothing declares them a second time: batch scoring
scores everyone in them, the deploy smoke test picks one of their newest rows that is
online, parity samples them. A model whose entities live in a table of its own (its own
landing source, string ids) is scored and smoke-tested on those, never on another model's
customers, and adding one edits no file of the core.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
from feast import FeatureStore
from feast.value_type import ValueType

from core.spec import EntityKeyDtype, ModelSpec
from data import delta_tables
from data.store import feature_views_of

# Feast's value types of a join key, as the spec's ``entity_key_dtype`` names them.
KEY_DTYPES: dict[ValueType, EntityKeyDtype] = {
    ValueType.INT64: "int64",
    ValueType.INT32: "int64",
    ValueType.STRING: "string",
}


class EntitiesDisagree(ValueError):
    """The feature service's views and the spec do not agree on the entity key."""


@dataclass(frozen=True)
class EntityTable:
    """One Delta table behind a view of the service: its rows are entities at a time."""

    view: str
    path: str
    timestamp_field: str


@dataclass(frozen=True)
class EntityListing:
    """Where a feature service's entities are listed: its views' tables, by one join key."""

    feature_service: str
    join_key: str
    key_dtype: EntityKeyDtype
    tables: tuple[EntityTable, ...]
    entities: tuple[str, ...] = ()  # the Feast entities of the views, by name

    @property
    def table_names(self) -> list[str]:
        """The tables' folder names, for messages."""
        return sorted({Path(t.path).name for t in self.tables})

    def keys(self, values: pd.Series) -> pd.Series:
        """``values`` as keys of this type (the Delta and Feast reads may widen them)."""
        return values.astype("int64") if self.key_dtype == "int64" else values.astype(str)


@dataclass(frozen=True)
class NewestEntities:
    """The entities of the newest rows of a service's tables, and those rows' time."""

    as_of: pd.Timestamp | None  # None: no table has a row yet
    keys: pd.Series


def entity_listing(store: FeatureStore, feature_service: str) -> EntityListing:
    """The listing of ``feature_service``, read from Feast's registry.

    Every view must be keyed by the same single join key (one entity per model).
    """
    tables, keys, entities = [], set(), set()
    for name in feature_views_of(store, feature_service):
        view = store.get_feature_view(name)
        entities.update(view.entities)
        for column in view.entity_columns:
            keys.add((column.name, column.dtype.to_value_type()))
        source = view.batch_source
        # A FileSource's path: the Delta table Feast itself reads for this view.
        tables.append(EntityTable(name, source.path, source.timestamp_field))  # type: ignore[attr-defined]
    if len(keys) != 1:
        found = sorted(f"{key} ({value_type.name})" for key, value_type in keys)
        raise EntitiesDisagree(
            f"feature service {feature_service} must read views of one join key, not {found}"
        )
    ((join_key, value_type),) = keys
    if value_type not in KEY_DTYPES:
        raise EntitiesDisagree(f"join key {join_key} of {feature_service} is {value_type.name}")
    return EntityListing(
        feature_service, join_key, KEY_DTYPES[value_type], tuple(tables), tuple(sorted(entities))
    )


def listing_of(store: FeatureStore, spec: ModelSpec) -> EntityListing:
    """The listing of ``spec``'s feature service, checked against the spec's entity: its
    views are of that Feast entity, keyed by its join key of its type."""
    listing = entity_listing(store, spec.feature_service)
    declared = (spec.entity_key, spec.entity_key_dtype)
    if (listing.join_key, listing.key_dtype) != declared:
        raise EntitiesDisagree(
            f"{spec.name} declares entity key {declared}, but its feature service "
            f"{spec.feature_service} is keyed by {(listing.join_key, listing.key_dtype)}"
        )
    if listing.entities != (spec.entity.name,):
        raise EntitiesDisagree(
            f"{spec.name} declares entity {spec.entity.name!r}, but the views of its feature "
            f"service {spec.feature_service} are of {list(listing.entities)}"
        )
    return listing


def entities_as_of(listing: EntityListing, as_of: datetime) -> pd.Series:
    """Every entity with a row stamped at or before ``as_of`` in any of the tables, sorted."""
    found = [
        delta_tables.read_table(
            Path(table.path),
            columns=[listing.join_key],
            filters=[(table.timestamp_field, "<=", pd.Timestamp(as_of))],
        )[listing.join_key]
        for table in listing.tables
    ]
    return _sorted_keys(listing, found)


def newest_entities(listing: EntityListing) -> NewestEntities:
    """The entities of the newest rows (the newest timestamp) of any of the tables.

    A table's rows of one day share its stamp (the end of the day, or the time a day not
    over yet was computed), so these are the latest snapshot's entities; ``as_of`` is the
    newest stamp of all tables.
    """
    newest: list[tuple[pd.Timestamp, pd.Series]] = []
    for table in listing.tables:
        rows = delta_tables.read_table(
            Path(table.path), columns=[listing.join_key, table.timestamp_field]
        )
        if rows.empty:
            continue
        stamps = pd.to_datetime(rows[table.timestamp_field], utc=True)
        latest = stamps.max()
        newest.append((latest, rows.loc[stamps == latest, listing.join_key]))
    if not newest:
        return NewestEntities(None, _sorted_keys(listing, []))
    as_of = max(stamp for stamp, _ in newest)
    return NewestEntities(as_of, _sorted_keys(listing, [keys for _, keys in newest]))


def _sorted_keys(listing: EntityListing, parts: list[pd.Series]) -> pd.Series:
    if not parts:
        return listing.keys(
            pd.Series([], dtype="int64" if listing.key_dtype == "int64" else object)
        )
    keys = listing.keys(pd.concat(parts, ignore_index=True)).drop_duplicates()
    return keys.sort_values(ignore_index=True).rename(listing.join_key)
