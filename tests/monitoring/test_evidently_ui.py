"""The monitoring snapshots in Evidently's own UI: the real server, read over its HTTP API.

The periods are scored by :func:`monitoring.performance.quality_by_period` and the drift
report built by :func:`monitoring.drift.build_drift_report`, as the monitoring DAG does;
the UI is started by the command ``make evidently-ui`` runs.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pandas as pd
import pytest

from cli.operator_uis import evidently_secret, evidently_ui
from models.churn.spec import SPEC as CHURN
from monitoring.drift import build_drift_report
from monitoring.evidently_ui import (
    add_drift_snapshot,
    add_quality_snapshots,
    model_project,
    open_workspace,
)
from monitoring.performance import performance_alert, quality_by_period
from tests.monitoring.test_drift_report import churn_frame

DAY0 = datetime(2026, 6, 1, tzinfo=UTC)


def labelled_days(
    kinds: list[str], rows: int = 60, version: int = 1, variant: str = "champion"
) -> pd.DataFrame:
    """Labelled churn predictions, one day per kind: "good" all right, "bad" all wrong."""
    rng = np.random.default_rng(7)
    days = []
    for day, kind in enumerate(kinds):
        label = np.arange(rows) % 2
        prediction = label if kind == "good" else 1 - label
        days.append(
            pd.DataFrame(
                {
                    "logged_at": [DAY0 + timedelta(days=day, minutes=m) for m in range(rows)],
                    "customer_id": rng.integers(1, 500, rows),
                    "model_version": version,
                    "variant": variant,
                    "probability": np.where(prediction == 1, 0.8, 0.2),
                    "prediction": prediction,
                    "churned": label,
                }
            )
        )
    return pd.concat(days, ignore_index=True)


def series(client: httpx.Client, project: str, metric: str, tags: list[str], labels=None):
    """The UI's own data-series query, as its dashboard panels send it."""
    response = client.post(
        f"/api/v2/snapshots/{project}/data_series_batch",
        json={"series_filter": [{"metric": f"evidently:metric_v2:{metric}", "tags": tags,
                                 "metadata": {}, "metric_labels": labels or {}}]},
    )  # fmt: skip
    response.raise_for_status()
    return response.json()


def panel_series(client: httpx.Client, project: str, panel: dict) -> dict:
    """The data of one dashboard panel, queried as the UI does: all its values at once."""
    filters = [{k: v[k] for k in ("metric", "tags", "metadata", "metric_labels")}
               for v in panel["values"]]  # fmt: skip
    response = client.post(
        f"/api/v2/snapshots/{project}/data_series_batch", json={"series_filter": filters}
    )
    response.raise_for_status()
    return response.json()


@pytest.fixture
def ui(state, free_port):
    port = free_port + 7
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            pytest.fail(f"port {port} is taken")
    command = evidently_ui(state, port)
    server = subprocess.Popen(
        command.command,
        env={**os.environ, **command.env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    deadline = time.monotonic() + 120
    try:
        while True:
            try:
                if client.get("/api/projects").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                pytest.fail("Evidently UI did not start")
            time.sleep(0.5)
        yield client
    finally:
        client.close()
        server.terminate()
        server.wait(timeout=30)


def test_dashboards_hold_the_periods_alerts_and_psi(state, ui):
    kinds = ["good", "good", "bad", "bad", "bad"]
    # A challenger (v2) served beside the champion on the first two days.
    labelled = pd.concat(
        [labelled_days(kinds), labelled_days(["good", "bad"], 40, 2, "challenger")]
    )
    periods = quality_by_period(CHURN, labelled, save_to=state.storage.reports_dir / "periods")
    alerts = performance_alert(CHURN, periods)  # F1 below 0.3 three days running
    assert len(alerts) == 1
    assert add_quality_snapshots(CHURN, state, periods, alerts) == 7
    # A rerun on the same labels writes nothing; one more label per day replaces each.
    assert add_quality_snapshots(CHURN, state, periods, alerts) == 0
    drift = build_drift_report(
        CHURN, churn_frame(800, 1), churn_frame(400, 2, spend_factor=2.0, live=True), state
    )
    add_drift_snapshot(CHURN, state, drift.snapshot_path)
    project = str(model_project(open_workspace(state), CHURN).id)

    (listed,) = [p for p in ui.get("/api/projects").json() if p["name"] == "churn"]
    assert listed["id"] == project
    dashboard = ui.get(f"/api/v2/dashboards/{project}").json()
    assert [t["title"] for t in dashboard["tabs"]] == ["Drift", "Live quality"]
    panels = {p["title"]: p for p in dashboard["panels"]}
    assert {
        "PSI per feature",
        "Share of drifted columns",
        "Live f1 on matured labels: champion",
        "Live f1 on matured labels: challenger",
        "Accuracy (1 - error rate): champion",
        "Performance alerts",
    } <= set(panels)
    for tab in dashboard["tabs"]:  # each panel listed once
        assert len(tab["panels"]) == len(set(tab["panels"]))

    f1 = series(ui, project, "F1Score", ["quality", "champion"])
    days = [s["timestamp"][:10] for s in f1["sources"]]
    assert days == [f"2026-06-0{d}" for d in range(1, 6)]
    (values,) = [s["values"] for s in f1["series"]]
    assert values == pytest.approx([1.0, 1.0, 0.0, 0.0, 0.0])
    # Each variant's panel draws its own periods, though they share their days.
    for variant, expected in (("champion", [1.0, 1.0, 0.0, 0.0, 0.0]), ("challenger", [1.0, 0.0])):
        drawn = panel_series(ui, project, panels[f"Live f1 on matured labels: {variant}"])
        assert [s["timestamp"][:10] for s in drawn["sources"]] == days[: len(expected)]
        (line,) = drawn["series"]
        assert line["values"] == pytest.approx(expected)
    marked = series(ui, project, "F1Score", ["quality", "alert"])
    assert [s["timestamp"][:10] for s in marked["sources"]] == days[2:]

    psi = series(ui, project, "ValueDrift", ["drift"], {"column": "total_spend_30d"})
    (spend,) = psi["series"]
    expected = {c.column: c.psi for c in drift.features}["total_spend_30d"]
    assert spend["values"] == [pytest.approx(expected)]
    # The share of drifted columns: the features' preset, apart from the outputs' one.
    panel = panels["Share of drifted columns"]
    assert len(panel_series(ui, project, panel)["series"]) == 2
    legends = [v["legend"] for v in panel["values"]]
    assert legends == ["features", "model outputs"]
    features = panel["values"][0]["metric_labels"]
    (share,) = series(ui, project, "DriftedColumnsCount", ["drift"], features)["series"]
    drifted = sum(c.level == "significant" for c in drift.features) / len(drift.features)
    assert share["values"] == [pytest.approx(drifted)] and drifted > 0


def test_writes_need_the_ui_write_secret_reads_do_not(state, ui):
    from evidently.ui.workspace import RemoteWorkspace

    url = str(ui.base_url)
    anonymous = RemoteWorkspace(url)
    with pytest.raises(Exception, match=r"403|401|[Pp]ermission"):
        anonymous.create_project("created without the secret")
    assert ui.get("/api/v2/projects").status_code == 200  # reading needs no secret
    assert [p.name for p in anonymous.list_projects()] == []
    operator = RemoteWorkspace(url, secret=evidently_secret(state))
    project = operator.create_project("created by the operator")
    assert [p.name for p in anonymous.list_projects()] == ["created by the operator"]
    with pytest.raises(Exception, match=r"403|401|[Pp]ermission"):
        anonymous.delete_project(project.id)
    assert len(operator.list_projects()) == 1
