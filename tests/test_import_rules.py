"""The packages import one way: core <- feature_repo, expectations <- data <- models <-
serving, monitoring <- dags, cli. Checked on the source (every import statement, also
inside functions), so a lazy import cannot hide a wrong-way dependency.

One exception, by design: a model's Feast definition file may import that model's feature
declarations (``models/<name>/features.py``), which themselves import only the core, so
a feature is declared once and the Feast repo still depends on nothing but Feast and the
core."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT = {"core", "feature_repo", "expectations", "data", "models", "serving", "monitoring"}
PROJECT |= {"dags", "cli"}

# package -> the project packages it may import (besides itself)
ALLOWED = {
    "core": set(),
    "feature_repo": {"core"},  # Feast definitions: Feast and the core only
    "expectations": {"core"},
    "data": {"core", "expectations"},
    "models": {"core", "data", "expectations"},
    "serving": {"core", "data", "models"},
    "monitoring": {"core", "data", "models", "serving"},
    "dags": {"core", "data", "expectations", "models", "monitoring", "serving"},
    "cli": {"core", "data", "expectations", "models", "monitoring", "serving"},
}
# module prefixes a package must never import, even where the package is allowed
FORBIDDEN = {
    "serving": ("models.training",),  # serving scores models; it never trains them
    "monitoring": ("models.training",),
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


# modules a package may import although their package is not allowed (see the docstring)
DECLARATIONS = {"feature_repo": re.compile(r"^models\.[a-z_0-9]+\.features(\.|$)")}


def feature_declaration_modules() -> list[Path]:
    return sorted((ROOT / "models").glob("*/features.py"))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_it_may(package: str) -> None:
    wrong = []
    for path in sources(package):
        for name in imported_modules(path):
            top = name.split(".")[0]
            declared = DECLARATIONS.get(package)
            if declared is not None and declared.match(name):
                continue
            if top in PROJECT and top != package and top not in ALLOWED[package]:
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
            if name.startswith(FORBIDDEN.get(package, ())):
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert sorted(set(wrong)) == []


@pytest.mark.parametrize(
    "path", feature_declaration_modules(), ids=lambda p: str(p.relative_to(ROOT))
)
def test_feature_declarations_import_only_the_core(path: Path) -> None:
    project = {n for n in imported_modules(path) if n.split(".")[0] in PROJECT}
    assert {n for n in project if not n.startswith("core")} == set()


def test_every_project_package_has_a_rule() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert packages == set(ALLOWED)


def test_the_rule_catches_a_wrong_way_import(tmp_path: Path) -> None:
    module = tmp_path / "lazy.py"
    module.write_text("def f():\n    from models.training import train_and_log\n")
    assert "models.training" in imported_modules(module)


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in ALLOWED:
        for path in sources(package):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def reachable(start: str, modules: dict[str, Path]) -> set[str]:
    """Every project module that importing ``start`` (and calling into it) can load."""
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen or name not in modules:
            continue
        seen.add(name)
        for imported in imported_modules(modules[name]):
            # "from a.b import c" names a.b.c: a module if there is one, else a.b's attribute
            todo.append(imported if imported in modules else imported.rpartition(".")[0])
    return seen


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_path_of_imports_leads_to_forbidden_code(package: str) -> None:
    modules = project_modules()
    for name in (m for m in modules if m.split(".")[0] == package):
        loaded = reachable(name, modules)
        assert not [m for m in loaded if m.startswith(FORBIDDEN[package])], name


def test_no_module_reads_settings_or_the_environment_at_import(tmp_path: Path) -> None:
    """Import every module of every package (but the Feast repo, whose definition files
    read the settings when Feast imports them, by Feast's design) in a fresh interpreter
    whose environment holds a refused setting: a module that read the settings on import
    would raise, and one that made state folders would create them."""
    import subprocess
    import sys

    modules = [
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for package in sorted(PROJECT - {"feature_repo"})
        for path in sources(package)
    ]
    script = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "CHURN_SERVE_PORT": "not-a-port",  # get_settings() would refuse it
        "CHURN_STATE_DIR": str(tmp_path / "state"),
    }
    done = subprocess.run(
        [sys.executable, "-c", script, *modules],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(modules) > 50
    assert not (tmp_path / "state").exists()


# What only churn may name: its label table, its horizon, its label transform. A module
# outside models/<name>/ that names them is the core knowing a model.
CHURN_ONLY = re.compile(r"churn_labels|churn_horizon|compute_churn_labels", re.IGNORECASE)


def outside_the_models(root: Path) -> list[Path]:
    """Every Python file of the project but the models' own packages and the tests."""
    found = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if parts[0].startswith(".") or parts[0] == "tests":
            continue  # the virtualenv, git's and tools' folders; the tests may name anything
        if parts[0] == "models" and len(parts) > 2:
            continue  # models/<name>/...: a model's own package
        found.append(path)
    return found


def names_of_churn(root: Path) -> list[str]:
    return [
        f"{path.relative_to(root)}:{number}: {line.strip()}"
        for path in outside_the_models(root)
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if CHURN_ONLY.search(line)
    ]


def test_no_module_outside_the_models_names_churns_labels_horizon_or_tables() -> None:
    assert names_of_churn(ROOT) == []
    # The scan is not empty-handed: churn's own package does name them.
    assert any(CHURN_ONLY.search(p.read_text()) for p in (ROOT / "models" / "churn").glob("*.py"))


def test_the_churn_scan_catches_a_core_module_and_spares_the_models(tmp_path: Path) -> None:
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "settings.py").write_text("x = 1\nchurn_horizon_days = 30\n")
    (tmp_path / "models" / "churn").mkdir(parents=True)
    (tmp_path / "models" / "churn" / "labels.py").write_text('NAME = "churn_labels"\n')
    (tmp_path / "models" / "catalog.py").write_text('TABLE = "churn_labels"\n')
    assert names_of_churn(tmp_path) == [
        "core/settings.py:2: churn_horizon_days = 30",
        'models/catalog.py:1: TABLE = "churn_labels"',
    ]
