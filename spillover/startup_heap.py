"""Start-up objects taken out of the garbage collector's way, once the ingress has started.

The ingress process holds about half a million objects that live as long as it does (FastAPI and
pydantic models, SQLAlchemy, redis, numpy and scipy pulled in by the routers, the config). CPython's
oldest-generation collection walks every tracked object, and while it runs no request in the
process moves: on this project's 2-core host one full collection of the costs benchmark's
ingress took about 400 ms, and at 200 requests/s such collections were the 130-250 ms
whole-process stalls behind its missed p99 (bench/costs.py, issue 25). ``gc.freeze()`` moves
every object alive at that moment into a permanent generation that collections skip, so a full
collection walks only what was made since start-up. Garbage is collected first, so none of it
is frozen for good.
"""

from __future__ import annotations

import gc

__all__ = ["freeze_startup_heap"]


def freeze_startup_heap() -> int:
    """Collect, then freeze what survives; returns how many objects are now frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
