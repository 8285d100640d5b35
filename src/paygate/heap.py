"""The start-up heap, frozen once per process (a neutral module: the API, the worker and the bank simulator
use it, and it imports nothing of theirs).

What a process has built by the time it serves — modules, settings, the app, its routes, pools: ~80k objects —
lives as long as the process. Left to the cyclic collector, every full pass walks it again; under load those
passes took a fifth of the worker's CPU and showed as 50 ms stalls in the API's tail latency (py-spy,
docs/decisions/0024). `gc.freeze()` moves them to a generation the collector never scans. The collect before it
drops the garbage cycles of start-up, so that nothing frozen is garbage (frozen objects are never collected:
freezing garbage would keep it for ever). Once per process: a test process that starts many apps collects and
freezes at the first only, and whatever it makes afterwards is collected as usual.
"""

from __future__ import annotations

import gc

_frozen = False


def freeze_once() -> None:
    global _frozen
    if _frozen:
        return
    gc.collect()
    gc.freeze()
    _frozen = True
