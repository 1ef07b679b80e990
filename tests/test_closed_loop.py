"""The whole loop, end to end, as `make demo` runs it (smaller): a real process, real tools."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_demo_loop_end_to_end(tmp_path, free_port):
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURN_")}
    env.update(
        {
            "CHURN_STATE_DIR": str(state),
            "CHURN_FEATURE_STORE_YAML": str(state / "feature_store.yaml"),
            "CHURN_SERVE_PORT": str(free_port + 1),
            "CHURN_MIN_F1": "0.2",
        }
    )
    churn = str(Path(sys.executable).with_name("churn"))
    done = subprocess.run(
        [churn, "demo", "--customers", "900", "--days", "120", "--requests", "260"],
        env=env, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((state / "reports" / "demo_summary.json").read_text())

    assert [v["version"] for v in summary["versions"]] == [1, 2]
    assert summary["versions"][0]["promoted"]
    assert summary["champion"]["version"] in (1, 2) and summary["champion"]["reason"]
    assert summary["versions"][1]["gate_reason"]
    # Both versions scored on one holdout, as the second gate compared them.
    compared = summary["same_holdout"]
    assert compared["holdout_of_version"] == 2 and set(compared["f1"]) == {"1", "2"}
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
