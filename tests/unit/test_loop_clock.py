"""A timer set after the loop stood still counts from when it is set."""

from __future__ import annotations

import time

import gevent

from loadkit.loop_clock import call_later


def test_a_timer_set_after_the_loop_stood_still_counts_from_now():
    gevent.sleep(0.01)  # the loop turns and reads the clock...
    time.sleep(0.3)  # ...then stands still: what it read is 0.3 s old (a bare spawn_later(0.2) fires at once here)
    started = time.perf_counter()
    fired = []
    call_later(0.2, lambda: fired.append(time.perf_counter() - started)).join(timeout=5)
    assert fired and fired[0] >= 0.2, fired
