"""A/B routing: sticky per customer, challenger share within tolerance of the weight."""

import pytest

from serving.routing import CHALLENGER, CHAMPION, choose_variant, customer_bucket

CUSTOMERS = range(1, 50_001)


@pytest.mark.parametrize("weight", [0.0, 0.05, 0.2, 0.5, 0.9, 1.0])
def test_challenger_share_matches_the_weight(weight):
    routed = [choose_variant(c, "split", weight, "salt") for c in CUSTOMERS]
    share = routed.count(CHALLENGER) / len(routed)
    # binomial standard deviation at n=50k is at most 0.0023: 4 sigma
    assert share == pytest.approx(weight, abs=0.01)


def test_a_customer_always_gets_the_same_variant():
    first = [choose_variant(c, "split", 0.3, "salt") for c in CUSTOMERS]
    again = [choose_variant(c, "split", 0.3, "salt") for c in CUSTOMERS]
    assert first == again


def test_raising_the_weight_only_moves_customers_to_the_challenger():
    low = [choose_variant(c, "split", 0.1, "salt") for c in CUSTOMERS]
    high = [choose_variant(c, "split", 0.3, "salt") for c in CUSTOMERS]
    assert all(h == CHALLENGER for lo, h in zip(low, high, strict=True) if lo == CHALLENGER)


def test_a_new_salt_reshuffles_and_other_modes_serve_the_champion():
    a = [customer_bucket(c, "a") < 0.5 for c in range(1, 2001)]
    b = [customer_bucket(c, "b") < 0.5 for c in range(1, 2001)]
    assert 0.4 < sum(x != y for x, y in zip(a, b, strict=True)) / 2000 < 0.6
    assert {
        choose_variant(c, mode, 1.0, "s") for c in range(1, 500) for mode in ("off", "shadow")
    } == {CHAMPION}
