"""The one reading of a row id from the outside world (path, query, cable data, token claim).

Ids arrive as strings of digits (paths, queries, JWT claims) or as JSON numbers (cable
actions). Every caller used to check its own way, with its own range; here one parser decides
what an id is, and each caller keeps its own answer for "not an id" (404 for a path, 422 for a
field, 401 for a token) by passing `error`.
"""

from __future__ import annotations

from collections.abc import Callable

from infra.errors import HubError

# Row ids are SQL INTEGERs; notifications are BIGINTs. A number outside the column's range
# names nothing (and PostgreSQL would refuse it in a query).
MAX_ROW_ID = 2**31 - 1
MAX_BIGINT_ID = 2**63 - 1

# More significant digits than any id in range has: refused before int() does any work.
_MAX_DIGITS = len(str(MAX_BIGINT_ID))


def _validation_failed() -> HubError:
    return HubError(422, "validation.failed")


def parse_id(
    value: object,
    *,
    maximum: int = MAX_BIGINT_ID,
    allow_zero: bool = False,
    error: Callable[[], Exception] = _validation_failed,
) -> int:
    """`value` as an id in 1..`maximum` (0.. with `allow_zero`), else raise `error()`.

    Accepted: an int (not a bool), or a string of ASCII digits. `"²".isdigit()` is true but
    `int("²")` raises, and `int()` would also take `" 1"`, `"+1"` and `"1_0"`: none is an id.
    """
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit()):
            raise error()
        if len(value.lstrip("0")) > _MAX_DIGITS:
            raise error()
        number = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        raise error()
    if not (0 if allow_zero else 1) <= number <= maximum:
        raise error()
    return number
