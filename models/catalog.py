"""The models of the platform: every ``models/<name>/spec.py`` that declares a ``SPEC``.

Adding a model is adding its package; nothing here names one.
Specs are found by walking this package's sub-packages, so a DAG file, the service and
the CLI all see the same models.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from pathlib import Path

from core.sources import ORDERS, LandingSource
from core.spec import FeatureTable, ModelSpec

MODELS_DIR = Path(__file__).resolve().parent


class UnknownModel(KeyError):
    """No spec has this name."""


@cache
def load_specs() -> tuple[ModelSpec, ...]:
    """Every declared model, by name (each package's ``spec.SPEC``)."""
    specs = []
    for module in pkgutil.iter_modules([str(MODELS_DIR)]):
        if module.ispkg and (MODELS_DIR / module.name / "spec.py").is_file():
            spec = importlib.import_module(f"models.{module.name}.spec").SPEC
            if not isinstance(spec, ModelSpec):
                raise TypeError(f"models/{module.name}/spec.py: SPEC is not a ModelSpec")
            specs.append(spec)
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"two specs share a name: {sorted(names)}")
    defaults = [s.name for s in specs if s.serves_default_routes]
    if len(defaults) > 1:
        raise ValueError(f"only one model may serve /predict, not {defaults}")
    return tuple(sorted(specs, key=lambda s: s.name))


def get_spec(name: str) -> ModelSpec:
    """The spec called ``name``."""
    for spec in load_specs():
        if spec.name == name:
            return spec
    raise UnknownModel(f"no model {name!r}; declared: {[s.name for s in load_specs()]}")


def check_gate_overrides(settings) -> None:
    """Refuse a ``CHURN_GATE_MIN_SCORES`` that names no declared model (a typo would
    otherwise leave the spec's minimum in force without a word)."""
    unknown = set(settings.gate_min_scores) - {s.name for s in load_specs()}
    if unknown:
        declared = [s.name for s in load_specs()]
        raise ValueError(
            f"CHURN_GATE_MIN_SCORES names no declared model: {sorted(unknown)} "
            f"(declared: {declared})"
        )


def default_model() -> str:
    """The model ``/predict`` and the CLI's ``--model`` default to (``serves_default_routes``)."""
    return next((s.name for s in load_specs() if s.serves_default_routes), load_specs()[0].name)


def landing_sources() -> tuple[LandingSource, ...]:
    """The platform's orders and every source a spec brings: what the landing area accepts.

    Names and tables must be unique, and every computed table's sources declared.
    """
    sources = [ORDERS, *(source for spec in load_specs() for source in spec.sources)]
    for attribute in ("name", "table"):
        values = [getattr(source, attribute) for source in sources]
        if len(set(values)) != len(values):
            raise ValueError(f"two landing sources share a {attribute}: {sorted(values)}")
    names = {source.name for source in sources}
    for table in computed_tables():
        unknown = set(table.sources) - names
        if unknown:
            raise ValueError(f"table {table.name!r} reads undeclared sources {sorted(unknown)}")
    return tuple(sources)


def computed_tables() -> tuple[FeatureTable, ...]:
    """Every feature and label table a spec brings (the feature pipeline computes them all).

    Table names must be unique: each is a Delta table of its own.
    """
    tables = tuple(
        table for spec in load_specs() for table in (*spec.feature_tables, *spec.label_tables)
    )
    names = [table.name for table in tables]
    if len(set(names)) != len(names):
        raise ValueError(f"two computed tables share a name: {sorted(names)}")
    return tables


def feature_services() -> list[str]:
    """The feature service of every spec (what the feature pipeline materializes)."""
    return [spec.feature_service for spec in load_specs()]
