"""Running the pipelines on your own data without Airflow: ``churn land|features|train|monitor``."""

from __future__ import annotations

import shutil
import subprocess
from datetime import date, timedelta

import pandas as pd
import pytest

from cli.main import main
from core.settings import PROJECT_ROOT
from data import delta_tables, landing
from data.simulate import SimulationConfig, simulate_days
from models.churn.spec import SPEC as CHURN
from models.registry import CHAMPION, alias_version

CONFIG = SimulationConfig(customers=300, start_date=date(2026, 3, 1), days=75, seed=11)


def _write_csv(batch: pd.DataFrame, path) -> None:
    """A user's export: ISO-8601 timestamps with their offset."""
    batch.assign(order_timestamp=batch["order_timestamp"].map(pd.Timestamp.isoformat)).to_csv(
        path, index=False
    )


def test_own_csv_batches_go_through_features_training_and_monitoring(
    state, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("CHURN_GATE_MIN_SCORES", '{"churn": 0.0}')
    exports = tmp_path / "exports"
    exports.mkdir()
    for day, batch in simulate_days(CONFIG):
        _write_csv(batch, exports / f"export-{day:%Y%m%d}.csv")
        main(["land", str(exports / f"export-{day:%Y%m%d}.csv"), "--day", day.isoformat()])
    assert len(landing.pending_batches(state)) == CONFIG.days

    capsys.readouterr()
    main(["features"])
    out = capsys.readouterr().out
    orders = sum(len(batch) for _, batch in simulate_days(CONFIG))
    assert (
        f"ingested {orders:,} orders for {CONFIG.days} day(s), "
        f"{CONFIG.start_date} .. {CONFIG.end_date}"
    ) in out
    assert landing.pending_batches(state) == []
    raw_days = delta_tables.partition_dates(state.storage.raw_orders_path, "event_date")
    assert raw_days == [CONFIG.start_date + timedelta(days=i) for i in range(CONFIG.days)]

    main(["train", "--model", "churn", "--run-name", "own-data"])
    out = capsys.readouterr().out
    assert "customer_churn_model: registered version 1" in out and "promoted to champion" in out
    assert alias_version(state, CHURN.registered_model, CHAMPION) == 1
    assert (
        state.storage.state_dir / "training_sets" / "churn" / "own-data" / "train.parquet"
    ).is_file()

    main(["monitor", "--model", "churn"])
    assert "no verdict" in capsys.readouterr().out  # nothing served yet: no predictions logged

    main(["parity", "--model", "churn"])
    assert "churn (customer_features_v1): parity as of" in capsys.readouterr().out


def test_an_unknown_model_is_refused_by_name(state, capsys):
    with pytest.raises(SystemExit) as refused:
        main(["train", "--model", "nope"])
    assert refused.value.code == 2  # argparse's usage error, no traceback
    assert "invalid choice: 'nope' (choose from 'churn'" in capsys.readouterr().err


def test_land_refuses_a_name_that_is_not_a_batch_before_anything_lands(state, tmp_path):
    own = tmp_path / "orders_2026-12-2.csv"
    own.write_text("order_id\n")
    with pytest.raises(SystemExit) as refused:
        main(["land", str(own)])
    assert "expected orders_YYYY-MM-DD.parquet or .csv (one UTC day" in str(refused.value)
    assert landing.pending_batches(state) == []


def test_features_reports_a_refused_batch_and_exits_non_zero(state, tmp_path):
    ((day, batch),) = simulate_days(CONFIG, [CONFIG.start_date])
    own = tmp_path / "orders.csv"
    _write_csv(batch.assign(customer_segment="vip"), own)
    main(["land", str(own), "--day", day.isoformat()])
    with pytest.raises(SystemExit) as refused:
        main(["features"])
    assert "expect_column_values_to_be_in_set" in str(refused.value)
    assert "nothing ingested" in str(refused.value)


def test_land_refuses_to_replace_a_batch_that_is_waiting(state, tmp_path):
    ((day, batch),) = simulate_days(CONFIG, [CONFIG.start_date])
    first, second = tmp_path / "first.csv", tmp_path / "second.parquet"
    _write_csv(batch, first)
    batch.to_parquet(second)
    main(["land", str(first), "--day", day.isoformat()])
    with pytest.raises(SystemExit) as refused:
        main(["land", str(second), "--day", day.isoformat()])
    assert "is already waiting" in str(refused.value)
    assert [p.name for p in landing.pending_batches(state)] == [f"orders_{day}.csv"]


def test_land_takes_many_files_and_lands_each_whole_or_refuses_it(state, tmp_path, capsys):
    exports = tmp_path / "exports"
    exports.mkdir()
    days = [CONFIG.start_date + timedelta(days=i) for i in range(3)]
    for day, batch in simulate_days(CONFIG, days):
        _write_csv(batch, exports / f"orders_{day}.csv")
    (exports / "orders_2026-03-32.csv").write_text("order_id\n")  # no such day
    (exports / "returns_2026-03-01.csv").write_text("order_id\n")  # no such source

    with pytest.raises(SystemExit) as refused:
        main(["land", str(exports)])

    landed = capsys.readouterr().out.splitlines()
    assert landed == [
        f"landed {exports / f'orders_{day}.csv'} as orders_{day}.csv: orders of {day}"
        for day in days
    ]
    message = str(refused.value)
    assert f"refused {exports / 'orders_2026-03-32.csv'}: " in message
    assert "'2026-03-32' is not a calendar day" in message
    assert f"refused {exports / 'returns_2026-03-01.csv'}: " in message
    assert "source 'returns', which is not declared (declared: orders)" in message
    assert message.endswith("not all landed: 3 of 5 file(s) landed, 2 refused")
    assert [p.name for p in landing.pending_batches(state)] == [f"orders_{d}.csv" for d in days]

    # The good ones went through; the same request again finds them waiting, each by name.
    with pytest.raises(SystemExit) as again:
        main(["land", str(exports / "orders_*.csv")])
    assert f"orders_{days[0]}.csv is already waiting for {days[0]}" in str(again.value)
    assert str(again.value).endswith("0 of 4 file(s) landed, 4 refused")


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_land_passes_patterns_source_and_day_to_churn_land(state, tmp_path):
    ((day, batch),) = simulate_days(CONFIG, [CONFIG.start_date])
    exports = tmp_path / "exports"
    exports.mkdir()
    _write_csv(batch, exports / "shop-export.csv")
    make = ["make", "-s", "-o", ".venv/.installed", "land"]  # -o: the venv is there already

    done = subprocess.run(
        [*make, f"FILE={exports}/*.csv", "SOURCE=orders", f"DAY={day}"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert f"landed {exports / 'shop-export.csv'} as orders_{day}.csv: orders of {day}" in (
        done.stdout
    )
    assert [p.name for p in landing.pending_batches(state)] == [f"orders_{day}.csv"]
    # What a command writes is its owner's only, whatever the user's umask.
    (landed,) = landing.pending_batches(state)
    assert landed.stat().st_mode & 0o777 == 0o600
    usage = subprocess.run([*make], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
    assert usage.returncode == 2 and "usage: make land FILE=" in usage.stdout
