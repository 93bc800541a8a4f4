"""A locustfile with no users, added to a plain Locust run (``-f plain.py,fresh_clock_locustfile.py``).

Locust sets its --run-time timer from gevent's clock, which does not move
while the process starts up: on a busy machine a 3 s run of a plain
locustfile ended before its first message. loadkit's own runs refresh the
clock (loadkit.plugin); a plain run gets this listener and nothing else.
"""

from locust import events

from loadkit.loop_clock import refresh_loop_clock  # gevent alone, none of loadkit's listeners

events.init.add_listener(refresh_loop_clock)
