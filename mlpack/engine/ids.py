"""Response ids: random (version 4) UUID strings, made without a system call each.

``uuid.uuid4()`` reads 16 bytes from ``os.urandom`` (a ``getrandom`` system call) for every
response that comes without an id. The ids only have to be unique, not secret, so they come
from a per-process generator seeded from ``os.urandom`` (again in a forked child, so two
processes never share a sequence).
"""

from __future__ import annotations

import os
import random

_VERSION_4 = 0x4 << 76  # the version nibble (bits 76-79)
_VARIANT = 0x2 << 62  # RFC 4122 variant (bits 62-63: 10)
_CLEAR = ~((0xF << 76) | (0x3 << 62))

_random = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _random.seed(os.urandom(32)))


def new_id() -> str:
    """A random UUID in its canonical form (``8-4-4-4-12`` lower-case hex digits)."""
    value = (_random.getrandbits(128) & _CLEAR) | _VERSION_4 | _VARIANT
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
