"""A guard on the drift, metric and verdict code: its statistics come from Evidently, scipy
or statsmodels, never from a formula of ours.

It reads the source of every ``monitoring`` module (the AST, not the text, so comments and
docstrings don't count) and refuses the building blocks of a hand-made statistic: logs,
square roots, histograms, variances and quantiles, and scikit-learn's metric functions.
Plain counts and means of 0/1 outcomes (the share a verdict compares) stay allowed.
"""

import ast
from pathlib import Path

import pytest

MONITORING = Path(__file__).parents[2] / "monitoring"
MODULES = sorted(MONITORING.glob("*.py"))

# ``<module>.<function>`` calls that compute a statistic's parts by hand.
FORBIDDEN_CALLS = {
    (module, function)
    for module in ("np", "numpy", "math")
    for function in (
        "log", "log1p", "log2", "log10", "sqrt", "exp", "erf", "erfc", "histogram",
        "histogram_bin_edges", "std", "var", "percentile", "quantile", "corrcoef", "cov",
    )
}  # fmt: skip
FORBIDDEN_METHODS = {"std", "var", "quantile", "corr", "cov", "kurt", "skew"}
FORBIDDEN_IMPORTS = ("sklearn.metrics", "statistics", "scipy.special")
# Where each kind of statistic must come from, by module.
REQUIRED_SOURCES = {
    "_evidently_report.py": "evidently",  # PSI (drift.py imports it on first use)
    "_evidently_quality.py": "evidently",  # F1, precision, recall, ROC AUC, MAE, RMSE
    "ab_verdict.py": "statsmodels",  # and scipy for the regression's t-test
}


def imported_modules(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def hand_made_statistics(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        attribute = node.func
        owner = attribute.value.id if isinstance(attribute.value, ast.Name) else None
        if (owner, attribute.attr) in FORBIDDEN_CALLS:
            found.append(f"line {node.lineno}: {owner}.{attribute.attr}()")
        elif owner not in ("np", "numpy", "math") and attribute.attr in FORBIDDEN_METHODS:
            found.append(f"line {node.lineno}: .{attribute.attr}()")
    return sorted(found, key=lambda line: int(line.split()[1].rstrip(":")))


def test_the_guard_sees_every_monitoring_module():
    names = {path.name for path in MODULES}
    assert set(REQUIRED_SOURCES) | {"drift.py", "performance.py", "rollback.py"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_statistic_is_computed_by_hand(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    assert not hand_made_statistics(tree), f"{path.name} computes a statistic by hand"
    imported = imported_modules(tree)
    banned = [m for m in imported if m.startswith(FORBIDDEN_IMPORTS)]
    assert not banned, f"{path.name} imports {banned}: use Evidently, scipy or statsmodels"
    if path.name in REQUIRED_SOURCES:
        source = REQUIRED_SOURCES[path.name]
        assert any(m.split(".")[0] == source for m in imported), (
            f"{path.name} must take its statistics from {source}"
        )


def test_the_guard_catches_a_hand_made_psi():
    hand_made = ast.parse(
        "import numpy as np\n"
        "counts, _ = np.histogram(current, bins=10)\n"
        "psi = ((a - b) * np.log(a / b)).sum()\n"
        "spread = frame['x'].std()\n"
    )
    assert hand_made_statistics(hand_made) == [
        "line 2: np.histogram()",
        "line 3: np.log()",
        "line 4: .std()",
    ]
    assert imported_modules(ast.parse("from sklearn.metrics import f1_score")) == {
        "sklearn.metrics"
    }
