"""The circuit breaker in front of the stores, and the back-off of a failed model load
(no server: a fake clock, the registry and the loader replaced by stand-ins)."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from core.settings import Settings
from models.churn.spec import SPEC as CHURN
from models.registry import CHAMPION
from serving import live_models
from serving.breaker import CircuitBreaker, StoreDown
from serving.live_models import LiveModels
from serving.model import LoadedModel, ModelLoadError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def fail() -> None:
    raise ConnectionError("Connection refused")


def test_a_failure_marks_the_store_down_and_calls_fail_fast_until_a_probe_succeeds():
    clock = Clock()
    breaker = CircuitBreaker("store", retry_seconds=1.0, clock=clock)
    calls = []
    assert breaker.call(lambda: calls.append(1) or "ok", (ConnectionError,)) == "ok"
    with pytest.raises(ConnectionError):
        breaker.call(fail, (ConnectionError,))
    assert breaker.error == "Connection refused"
    for _ in range(5):  # within the interval nothing reaches the store
        with pytest.raises(StoreDown, match="Connection refused"):
            breaker.call(lambda: calls.append(2), (ConnectionError,))
    assert calls == [1]
    clock.now += 1.0
    with pytest.raises(ConnectionError):  # the probe fails: down for another interval
        breaker.call(fail, (ConnectionError,))
    with pytest.raises(StoreDown):
        breaker.call(lambda: calls.append(3), (ConnectionError,))
    clock.now += 1.0
    assert breaker.call(lambda: "back", (ConnectionError,)) == "back"
    assert breaker.error is None
    assert breaker.call(lambda: "up", (ConnectionError,)) == "up"


def test_one_probe_at_a_time_and_other_errors_leave_the_state_alone():
    clock = Clock()
    breaker = CircuitBreaker("store", retry_seconds=1.0, clock=clock)
    with pytest.raises(ConnectionError):
        breaker.call(fail, (ConnectionError,))
    clock.now += 1.0
    probing, release = threading.Event(), threading.Event()
    answers = []

    def slow_probe() -> str:
        probing.set()
        release.wait(5)
        return "ok"

    probe = threading.Thread(target=lambda: answers.append(breaker.call(slow_probe, ())))
    probe.start()
    assert probing.wait(5)
    with pytest.raises(StoreDown):  # a second caller does not probe while one is out
        breaker.call(lambda: "second", (ConnectionError,))
    release.set()
    probe.join(5)
    assert answers == ["ok"] and breaker.error is None

    with pytest.raises(ConnectionError):
        breaker.call(fail, (ConnectionError,))
    clock.now += 1.0
    with pytest.raises(ValueError):  # not a store failure: the probe slot is released
        breaker.call(lambda: int("x"), (ConnectionError,))
    assert breaker.error == "Connection refused"
    assert breaker.call(lambda: "ok", (ConnectionError,)) == "ok"


@pytest.fixture
def stand_ins(monkeypatch) -> SimpleNamespace:
    """A fake clock, a registry of alias -> version, and a loader that fails for the
    versions in ``broken``; ``loads`` lists every version it was asked for."""
    world = SimpleNamespace(clock=Clock(), registry={CHAMPION: 1}, broken=set(), loads=[])

    def load_version(settings, spec, version, alias):
        world.loads.append(version)
        if version in world.broken:
            raise ModelLoadError(f"cannot load v{version}: artifact store unavailable")
        return LoadedModel(spec.registered_model, alias, version, scorer=None, runtime="onnx")  # type: ignore[arg-type]

    monkeypatch.setattr(live_models, "time", SimpleNamespace(monotonic=world.clock))
    monkeypatch.setattr(live_models, "configure_mlflow", lambda settings: object())
    monkeypatch.setattr(
        live_models,
        "alias_version",
        lambda settings, name, alias, client: world.registry.get(alias),
    )
    monkeypatch.setattr(live_models, "load_version", load_version)
    return world


def test_a_failed_load_is_retried_with_back_off_while_the_alias_names_it(stand_ins):
    clock, registry, broken, loads = (
        stand_ins.clock, stand_ins.registry, stand_ins.broken, stand_ins.loads
    )  # fmt: skip
    broken.add(2)
    states = []
    settings = Settings(serving={"model_refresh_seconds": 10})
    models = LiveModels(settings, CHURN, on_state=lambda alias, state: states.append(state))
    assert models.refresh() and models.get(CHAMPION).version == 1
    assert not models.state(CHAMPION).behind

    registry[CHAMPION] = 2
    models.refresh()
    state = models.state(CHAMPION)
    assert (state.served, state.registry, state.behind) == (1, 2, True)
    assert "artifact store unavailable" in state.error and state.retry_in == 10
    assert states[-1] == state

    tried_at = []  # a refresh every 5 s for 75 s: tries 10, 20 and 40 s apart (then 60 s)
    for _ in range(15):
        clock.now += 5
        before = len(loads)
        models.refresh()
        if len(loads) > before:
            tried_at.append(clock.now - 100)
    assert tried_at == [10.0, 30.0, 70.0]
    assert models.retry_delay(10) == 60
    assert models.get(CHAMPION).version == 1

    broken.clear()  # the artifacts are back: the next try serves v2
    clock.now += 60
    models.refresh()
    assert models.get(CHAMPION).version == 2
    state = models.state(CHAMPION)
    assert (state.served, state.registry, state.behind) == (2, 2, False)


def test_a_moved_alias_is_tried_at_once(stand_ins):
    registry, loads = stand_ins.registry, stand_ins.loads
    stand_ins.broken.add(2)
    models = LiveModels(Settings(serving={"model_refresh_seconds": 10}), CHURN)
    models.refresh()
    registry[CHAMPION] = 2
    models.refresh()
    registry[CHAMPION] = 3  # moved on before the back-off ran out: no waiting
    models.refresh()
    assert loads == [1, 2, 3] and models.get(CHAMPION).version == 3
    assert not models.state(CHAMPION).behind
