"""`UserScope`: one user in one product environment, the unit notifications belong to.

`(product_id, env, user_id)` used to travel as three loose arguments through every signature
of the service, the routes and the channel. It is built on every request and every cable
action, so it stays a plain slotted value: no checks beyond what its makers already did.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class UserScope:
    product_id: int
    env: str
    user_id: int

    @property
    def stream(self) -> str:
        """The user's stream in this product environment.

        The product is part of the name because a user is one identity across products:
        without it, product B's notifications would reach the tabs of product A.
        """
        return f"notifications:{self.product_id}:{self.env}:{self.user_id}"
