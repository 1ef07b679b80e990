"""An open-loop HTTP load generator (asyncio + aiohttp).

Request ``i`` is due at ``start + i / rate`` whatever happened to earlier requests, and its
latency is measured from that due time: a server that stalls is charged for every request
that queued behind the stall (no coordinated omission), as with wrk2.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import asdict, dataclass, field

import aiohttp
import numpy as np


@dataclass(frozen=True)
class RateResult:
    """The figures of one fixed-rate run."""

    target_rate: float
    duration_s: float
    sent: int
    ok: int
    errors: int
    achieved_rate: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    error_kinds: dict[str, int]
    # Episodes of requests over SLOW_MS, within STALL_GAP_S of each other: (seconds into
    # the run, requests, worst ms). Periodic episodes point at a periodic cause.
    stalls: list[tuple[float, int, float]] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


SLOW_MS = 10.0
STALL_GAP_S = 0.5


def stall_episodes(
    timings: list[tuple[float, float]], start: float
) -> list[tuple[float, int, float]]:
    """Group the requests slower than ``SLOW_MS`` into episodes (see ``RateResult.stalls``)."""
    slow = sorted(
        (done - latency - start, latency * 1000)
        for latency, done in timings
        if latency * 1000 > SLOW_MS
    )
    episodes: list[list[float]] = []
    for due, ms in slow:
        if episodes and due - episodes[-1][3] <= STALL_GAP_S:
            episode = episodes[-1]
            episode[1] += 1
            episode[2] = max(episode[2], ms)
            episode[3] = due
        else:
            episodes.append([due, 1, ms, due])
    return [(round(e[0], 2), int(e[1]), round(e[2], 1)) for e in episodes]


async def _one(
    session: aiohttp.ClientSession, url: str, body: dict, due: float, out: list, errors: dict
) -> None:
    try:
        async with session.post(url, json=body) as response:
            await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as error:
        status = type(error).__name__
    done = time.perf_counter()
    if status == 200:
        out.append((done - due, done))
    else:
        errors[str(status)] = errors.get(str(status), 0) + 1


async def _run(
    url: str, rate: float, duration: float, customers: list[int], seed: int, timeout: float
) -> RateResult:
    picker = random.Random(seed)
    total = int(rate * duration)
    timings: list[tuple[float, float]] = []
    errors: dict[str, int] = {}
    connector = aiohttp.TCPConnector(limit=512, force_close=False)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:
        tasks = []
        start = time.perf_counter() + 0.05
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            body = {"customer_id": picker.choice(customers)}
            tasks.append(asyncio.create_task(_one(session, url, body, due, timings, errors)))
        await asyncio.gather(*tasks)
    latencies = np.array([t for t, _ in timings]) * 1000 if timings else np.array([np.nan])
    last = max((d for _, d in timings), default=start + duration)
    n_errors = sum(errors.values())
    return RateResult(
        target_rate=rate,
        duration_s=duration,
        sent=total,
        ok=len(timings),
        errors=n_errors,
        achieved_rate=round(len(timings) / max(last - start, 1e-9), 1),
        p50_ms=round(float(np.percentile(latencies, 50)), 2),
        p95_ms=round(float(np.percentile(latencies, 95)), 2),
        p99_ms=round(float(np.percentile(latencies, 99)), 2),
        max_ms=round(float(np.max(latencies)), 2),
        error_kinds=errors,
        stalls=stall_episodes(timings, start),
    )


def run_rate(
    url: str,
    rate: float,
    duration: float,
    customers: list[int],
    seed: int = 0,
    timeout: float = 5.0,
) -> RateResult:
    """POST ``{"customer_id": ...}`` to ``url`` at ``rate`` req/s for ``duration`` seconds."""
    return asyncio.run(_run(url, rate, duration, customers, seed, timeout))
