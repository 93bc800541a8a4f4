"""gevent's loop clock, read anew before a timer is set from outside the loop.

The loop reads the clock only when it turns. Code that ran for a while
without yielding (Locust starting up, messages being built, a test before)
leaves it stale, and a timer set then counts from the stale time: a
`gevent.spawn_later(0.5, ...)` after a second without a turn fires at once.
"""

from __future__ import annotations

import gevent


def refresh_loop_clock(**_kwargs) -> None:
    """Read the clock into the loop now (also usable as an event listener)."""
    gevent.get_hub().loop.update_now()


def call_later(seconds: float, function, *args) -> gevent.Greenlet:
    """`gevent.spawn_later` that counts `seconds` from now, whatever the loop last read."""
    refresh_loop_clock()
    return gevent.spawn_later(seconds, function, *args)
