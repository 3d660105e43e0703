"""The shapes of a product slug and a web origin, shared by the settings (which name a
product and the hub's own origin) and the products domain (`auth.products`)."""

from __future__ import annotations

import re

# 1–64 lowercase letters, digits and inner dashes.
SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
# scheme://host[:port] with an optional trailing slash; groups: scheme, host, ":port".
ORIGIN = re.compile(r"(https?)://([A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\])(:\d{1,5})?/?")
