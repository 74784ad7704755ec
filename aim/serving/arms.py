"""A/B arm assignment: a stable hash of (salt, user id), the same in every process.

``sha256(salt + "\\x1f" + user_id)``'s first 8 bytes, read as an unsigned integer and divided by
2**64, give a number uniform in [0, 1); users below ``treatment_share`` get the treatment arm.
Python's ``hash()`` is salted per process and is never used. Changing the salt reshuffles users.
"""

from __future__ import annotations

import hashlib
from typing import Literal

Arm = Literal["control", "treatment"]
CONTROL: Arm = "control"
TREATMENT: Arm = "treatment"
ARMS: tuple[Arm, Arm] = (CONTROL, TREATMENT)


def bucket(salt: str, user_id: str) -> float:
    """The user's position in [0, 1): deterministic in (salt, user id), uniform over users."""
    digest = hashlib.sha256(f"{salt}\x1f{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign_arm(user_id: str, salt: str, treatment_share: float) -> Arm:
    """``treatment`` for a ``treatment_share`` of users (by :func:`bucket`), ``control`` for the rest."""
    return TREATMENT if bucket(salt, user_id) < treatment_share else CONTROL
