"""Landing sources: the kinds of raw file the landing area accepts, declared.

A source is named by its file prefix: a batch of source ``orders`` is one UTC day in a
file ``orders_YYYY-MM-DD.parquet`` (or ``.csv``). Its ``noun`` says what its rows are, for
the messages that count them ("ingested 4,930 orders"). Great Expectations judges it with
the source's ``suite`` (``expectations/suites/<suite>.json``) before it is written to the
source's Delta ``table``, partitioned by ``event_date``. The platform's own source is
:data:`ORDERS`; a model spec brings more in ``ModelSpec.sources``, and a
``FeatureTable`` names the sources it is computed from.

Every suite of a landing source is run with the same parameters (see
``expectations.validation.validate_batch``): ``validation_time_utc``, ``batch_day_start``,
``batch_day_end``, ``min_rows``, ``max_rows``, ``ingested_ids`` (the batch's ``id_column``
values already in the source's table under another day, or in a batch of the source
accepted earlier in the same run) and ``entity_id_min`` / ``entity_id_max``
(:mod:`core.schema`); a suite uses the ones it needs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FORMATS = (".parquet", ".csv")


@dataclass(frozen=True)
class LandingSource:
    """One kind of raw daily batch: its file prefix, suite, Delta table and event time.

    ``noun`` is the plural word for its rows in messages ("4,930 orders", "12 tickets");
    a source that declares none counts "rows". ``text_columns`` and ``float_columns`` give
    a CSV batch the dtypes its Parquet form has (an identifier ``007`` stays text, an
    amount ``12`` is a float). ``id_column``, one of the ``text_columns``, names an event
    once in the whole table (an order is ingested on one day only); None: the source has
    no such id.
    """

    name: str
    suite: str
    table: str
    time_column: str
    text_columns: tuple[str, ...] = ()
    float_columns: tuple[str, ...] = ()
    id_column: str | None = None
    noun: str = "rows"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.name):
            raise ValueError(f"{self.name!r}: a source name is lower-case letters, digits, _")
        if not self.noun.strip() or self.noun != self.noun.strip():
            raise ValueError(f"{self.name}: noun {self.noun!r} must be a word, e.g. 'tickets'")
        if self.id_column is not None and self.id_column not in self.text_columns:
            raise ValueError(f"{self.name}: id_column {self.id_column!r} must be a text column")

    @property
    def prefix(self) -> str:
        return f"{self.name}_"

    @property
    def expected_name(self) -> str:
        return f"{self.prefix}YYYY-MM-DD.parquet or .csv"

    def counted(self, rows: int) -> str:
        """``rows`` of this source in words: ``4,930 orders``."""
        return f"{rows:,} {self.noun}"

    def file_name(self, day: str, suffix: str = ".parquet") -> str:
        """The landed file name of ``day`` (ISO date)."""
        return f"{self.prefix}{day}{suffix}"

    def day_text(self, file_name: str) -> str | None:
        """The ``YYYY-MM-DD`` part when ``file_name`` is a batch of this source, else None."""
        match = re.fullmatch(
            rf"{re.escape(self.prefix)}(\d{{4}}-\d{{2}}-\d{{2}})\.(parquet|csv)", file_name
        )
        return match.group(1) if match else None


ORDERS = LandingSource(
    name="orders",
    suite="raw_orders",
    table="raw_orders",
    time_column="order_timestamp",
    text_columns=("order_id", "customer_segment"),
    float_columns=("amount",),
    id_column="order_id",
    noun="orders",
)
