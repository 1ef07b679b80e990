"""A/B routing: which variant answers a customer.

The split is sticky: a customer's bucket is a hash of (salt, entity key) in [0, 1), so
the same customer gets the same variant for as long as the weight and salt stay; raising
the weight only moves customers from champion to challenger, never back. A key is hashed
as its text, so string keys (a spec with ``entity_key_dtype="string"``) are split the same
way and integer keys keep the buckets they always had.
"""

from __future__ import annotations

import hashlib

from core.spec import EntityId
from models.aliases import CHALLENGER, CHAMPION


def model_routes(name: str) -> tuple[str, str]:
    """The predict and predict/batch routes of model ``name``."""
    return f"/models/{name}/predict", f"/models/{name}/predict/batch"


def customer_bucket(customer_id: EntityId, salt: str) -> float:
    """A stable, uniformly spread number in [0, 1) for the customer."""
    digest = hashlib.blake2b(f"{salt}:{customer_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def choose_variant(customer_id: EntityId, mode: str, challenger_weight: float, salt: str) -> str:
    """``challenger`` for the customer's share in ``split`` mode, else ``champion``."""
    if mode == "split" and customer_bucket(customer_id, salt) < challenger_weight:
        return CHALLENGER
    return CHAMPION
