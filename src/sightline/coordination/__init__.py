"""Coordination of scaled-out processes: evaluation claims and leader leases.

See docs/scale-out.md.
"""

from sightline.coordination._base import Claim, ClaimsState, Coordinator, new_owner_id
from sightline.coordination._leader import Leadership
from sightline.coordination._redis import RedisCoordinator
from sightline.coordination._store import StoreCoordinator

__all__ = [
    "Claim",
    "ClaimsState",
    "Coordinator",
    "Leadership",
    "RedisCoordinator",
    "StoreCoordinator",
    "new_owner_id",
]
