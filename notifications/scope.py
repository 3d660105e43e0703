"""`UserScope`: one user in one product environment, the unit notifications belong to.

`(product_id, env, user_id)` used to travel as three loose arguments through every signature
of the service, the routes and the channel. It is built on every request and every cable
action, so it stays a plain slotted value: no checks beyond what its makers already did.
"""

from __future__ import annotations

from dataclasses import dataclass


def user_stream(product_id: int, env: str, user_id: int) -> str:
    """The stream of one user in one product environment.

    The product is part of the name because a user is one identity across products: without
    it, product B's notifications would reach the tabs of product A. A function as well as
    `UserScope.stream` because the publish path names up to 1000 streams per request, and a
    frozen dataclass per recipient would cost several times the string itself.
    """
    return f"notifications:{product_id}:{env}:{user_id}"


@dataclass(frozen=True, slots=True)
class UserScope:
    product_id: int
    env: str
    user_id: int

    @property
    def stream(self) -> str:
        """The user's stream (see `user_stream`)."""
        return user_stream(self.product_id, self.env, self.user_id)
