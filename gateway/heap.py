"""The cyclic garbage collector's settings for a serving process.

CPython runs its youngest generation every 700 net container allocations. A request under way
holds a few hundred such objects until it ends, so with 16 requests in flight the collector ran
every few requests: each pass scanned the requests still in flight and promoted them, and every
tenth pass of the middle generation went on to scan the whole heap (~120 000 objects after start,
~44 ms a pass). Measured under load (bench/overhead.py, gateway-miss-spread c=16): 11% of the
process's CPU, about 50 µs per miss, and the full passes show in the p99.

So a serving process, once its app is built:

* freezes what start-up made (config, compiled maps, modules: alive for the process's life) out of
  the collector's view, so a full pass scans only what came after (``gc.freeze``; the Python docs
  describe it for servers that fork workers, and it serves a long-lived worker the same way);
* runs the youngest generation every ``GEN0_THRESHOLD`` net allocations instead of 700, far above
  what the requests in flight hold, so it runs for garbage, not for work under way. What it leaves
  is bounded: cyclic garbage waits for at most that many allocations.

Reference counting still frees frozen objects; only cycles among them stay until the process ends
(~800 objects once, at the first reload, for the default config).
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 50_000


def settle_after_startup() -> None:
    """Collect, freeze what is alive now, and raise the youngest generation's threshold."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, middle, oldest)
