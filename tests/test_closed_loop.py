"""The whole loop, end to end, as `make demo` runs it (smaller): a real process, real tools."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from models.catalog import load_specs

pytestmark = pytest.mark.slow


def test_demo_loop_end_to_end(tmp_path, free_port):
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURN_")}
    env.update(
        {
            "CHURN_STATE_DIR": str(state),
            "CHURN_FEATURE_STORE_YAML": str(state / "feature_store.yaml"),
            "CHURN_SERVE_PORT": str(free_port + 1),
            "CHURN_GATE_MIN_SCORES": '{"churn": 0.2}',
        }
    )
    churn = str(Path(sys.executable).with_name("churn"))
    done = subprocess.run(
        [churn, "demo", "--customers", "900", "--days", "120", "--requests", "260"],
        env=env, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    everything = json.loads((state / "reports" / "demo_summary.json").read_text())
    assert everything["summary_path"] == str(state / "reports" / "demo_summary.json")

    # Every declared model went through the loop: a champion, and a reason for each gate.
    specs = load_specs()
    assert set(everything["models"]) == {spec.name for spec in specs}
    for spec in specs:
        model = everything["models"][spec.name]
        assert model["model_name"] == spec.registered_model
        assert (model["task"], model["gate_metric"]) == (spec.task, spec.gate_metric)
        assert model["versions"] and model["versions"][0]["promoted"], spec.name
        assert all(v["gate_reason"] for v in model["versions"]), spec.name
        assert model["champion"]["version"] is not None and model["champion"]["reason"]
        assert model["traffic"]["baseline"]["status_codes"] == {"200": 260}, spec.name

    summary = everything["models"]["churn"]
    assert summary["model_name"] == "customer_churn_model" and summary["gate_metric"] == "f1"
    assert [v["version"] for v in summary["versions"]] == [1, 2]
    assert summary["versions"][0]["promoted"]
    assert summary["champion"]["version"] in (1, 2) and summary["champion"]["reason"]
    assert summary["versions"][1]["gate_reason"]
    # Both versions scored on one holdout, as the second gate compared them.
    compared = summary["same_holdout"]
    assert compared["holdout_of_version"] == 2 and compared["metric"] == "f1"
    assert set(compared["scores"]) == {"1", "2"}
    assert "on one holdout (v2's, the newest days)" in done.stdout
    # No drift on normal traffic, so no retraining then; drift on drifted traffic.
    assert summary["calm_check"]["significant"] is False
    drift = summary["drift"]
    assert drift["significant"] is True and drift["triggered_training_run"]
    assert any(f["level"] == "significant" for f in drift["features"])
    assert "sturges" in drift["psi_binning"]
    assert Path(drift["html_report"]).exists()
    assert summary["traffic"]["baseline"]["status_codes"] == {"200": 260}
    assert "Demo finished" in done.stdout
    # It leaves no server behind.
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", free_port + 1)) != 0, (
            "the demo's server still answers"
        )
