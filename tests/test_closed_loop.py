"""The whole loop, end to end, as `make demo` runs it (smaller): a real process, real tools.

The four acts of the story each leave their figures in the summary JSON: labels mature,
a concept shift drops live F1 while PSI stays calm, the performance alert retrains, the
live A/B verdict rejects a worse challenger, a bad promotion is rolled back under traffic,
and drift retrains the model it moved while the retraining policy debounces the other.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from models.catalog import get_spec, load_specs

pytestmark = pytest.mark.slow

REQUESTS = 260


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    state = tmp_path_factory.mktemp("demo") / "state"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURN_")}
    env.update(
        {
            "CHURN_STATE_DIR": str(state),
            "CHURN_FEATURE_STORE_YAML": str(state / "feature_store.yaml"),
            "CHURN_SERVE_PORT": str(port),
            "CHURN_GATE_MIN_SCORES": '{"churn": 0.2}',
        }
    )
    churn = str(Path(sys.executable).with_name("churn"))
    done = subprocess.run(
        [churn, "demo", "--customers", "1500", "--days", "120", "--requests", str(REQUESTS),
         "--replay-per-day", "500"],
        env=env, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((state / "reports" / "demo_summary.json").read_text())
    return {"summary": summary, "stdout": done.stdout, "state": state, "port": port}


def test_every_model_went_through_the_loop(demo):
    summary = demo["summary"]
    assert summary["summary_path"] == str(demo["state"] / "reports" / "demo_summary.json")
    specs = load_specs()
    assert set(summary["models"]) == {spec.name for spec in specs}
    for spec in specs:
        model = summary["models"][spec.name]
        assert model["model_name"] == spec.registered_model
        assert (model["task"], model["gate_metric"]) == (spec.task, spec.gate_metric)
        assert model["versions"][0]["gate.decision"] == "promoted", spec.name
        assert all(v.get("gate.reason") for v in model["versions"]), spec.name
        assert model["aliases"]["champion"] >= 1
        sent = summary["acts"]["1_normal"]["traffic"][spec.name]
        assert sent["status_codes"] == {"200": REQUESTS}, spec.name
    assert "Demo finished" in demo["stdout"]
    # It leaves no server behind.
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", demo["port"])) != 0, "the server still answers"


def test_labels_mature_only_after_their_horizon(demo):
    acts = demo["summary"]["acts"]
    for name, run in acts["1_normal"]["monitoring"].items():
        # Today's predictions: their 30 days have not passed, so all pending, none negative.
        assert run["drift"]["significant"] is False, name
        assert run["labels"]["matured"] == 0 and run["labels"]["pending"] > 0, name
    shifted = acts["2_concept_shift"]["monitoring"]["churn"]["labels"]
    replayed = acts["2_concept_shift"]["replayed"]["churn"]["logged"]
    assert shifted["matured"] == replayed  # the replayed days are 30+ days old
    assert shifted["pending"] == acts["1_normal"]["monitoring"]["churn"]["labels"]["pending"]


def test_a_concept_shift_drops_live_f1_while_psi_stays_calm(demo):
    shifted = demo["summary"]["acts"]["2_concept_shift"]
    churn = get_spec("churn")
    psi = shifted["psi_of_replayed_days"]
    assert set(psi) == set(churn.feature_names)
    assert sum(v < churn.psi_significant for v in psi.values()) > len(psi) / 2, psi
    [alert] = shifted["monitoring"]["churn"]["alerts"]
    assert alert["metric"] == "f1" and alert["model_version"] == 1
    assert len(alert["periods"]) == churn.alert_periods
    assert all(f1 < churn.live_threshold for f1 in alert["periods"].values())
    decision = shifted["monitoring"]["churn"]["retrain"]
    assert decision["accepted"] and decision["kind"] == "performance"
    [gate] = shifted["retraining"]["churn"]
    assert gate["version"] == 2 and gate["reason"]
    # The promotion ran the deploy DAG: the running server took v2 and passed the smoke test.
    deployed = gate["deploy"]
    assert deployed["deployed"] and deployed["version"] == 2 and deployed["target"] == "local"
    assert 0 < deployed["time_to_production_seconds"] < 300


def test_the_live_verdict_rejects_the_worse_challenger(demo):
    summary = demo["summary"]
    worse = summary["acts"]["2_concept_shift"]["worse_challenger"]
    verdict = summary["acts"]["3_verdict_and_rollback"]["verdict_run"]["ab_verdict"]
    assert verdict["challenger_version"] == worse and verdict["decision"] == "champion_better"
    assert verdict["lift"] < 0 and verdict["ci_high"] < 0 and verdict["p_value"] < 0.05
    assert verdict["test"] == "two-proportion z-test"
    tags = {v["version"]: v for v in summary["models"]["churn"]["versions"]}
    assert tags[worse]["live_ab.decision"] == "champion_better"


def test_a_bad_promotion_is_rolled_back_under_traffic(demo):
    summary = demo["summary"]
    third = summary["acts"]["3_verdict_and_rollback"]
    promoted = third["promoted_by_hand"]
    rolled = third["rollback_run"]["rollback"]
    assert rolled["rolled_back"]
    assert (rolled["champion_version"], rolled["previous_version"]) == (
        promoted["version"],
        promoted["replaced"],
    )
    assert (
        max(rolled["champion_recent"]) < rolled["previous_live"] - get_spec("churn").rollback_margin
    )
    during = third["traffic_during_rollback"]
    assert set(during["status_codes"]) == {"200"} and during["requests"] >= 50
    assert set(during["versions_served"]) == {str(promoted["version"]), str(promoted["replaced"])}
    assert third["serving_took_promotion_in_seconds"] is not None
    assert third["serving_followed_in_seconds"] is not None
    restored = third["rollback_run"]["deploy"]  # the rollback moved champion: deployed
    assert restored["deployed"] and restored["version"] == promoted["replaced"]
    churn = summary["models"]["churn"]
    assert churn["aliases"]["champion"] == promoted["replaced"]
    tags = {v["version"]: v for v in churn["versions"]}
    assert tags[promoted["version"]]["rollback.role"] == "rolled_back"
    assert tags[promoted["replaced"]]["rollback.role"] == "restored"
    assert tags[promoted["replaced"]]["rollback.reason"] == rolled["reason"]


def test_the_retraining_policy_debounces_and_drift_retrains(demo):
    summary = demo["summary"]
    drift = summary["acts"]["4_drift"]
    assert drift["monitoring"]["next_spend"]["drift"]["significant"] is True
    assert drift["monitoring"]["next_spend"]["retrain"]["accepted"]
    assert drift["retraining"]["next_spend"]
    history = summary["models"]["churn"]["retraining_policy"]
    assert history[0]["accepted"] and history[0]["kind"] == "performance"
    refused = [d for d in history[1:] if not d["accepted"]]
    assert refused and all("cool-down" in d["why"] for d in refused)
    assert not any(d["accepted"] for d in history[1:])
