"""Locust, headless, inside this process: the engine under `loadkit source` and `loadkit demo`.

Running the Environment in-process (rather than the `locust` command in a
subprocess) saves the start-up and lets the caller end the run on its own
terms: after a duration, or when a budget of messages is spent.
"""

from __future__ import annotations

import time

from gevent.event import Event
from locust import events
from locust.env import Environment

from loadkit.metrics._csv import LocustCsv

STOP_TIMEOUT = 30.0  # seconds; the users' default network timeout


class HeadlessRun:
    """One headless Locust run of `user_classes` against `host`."""

    def __init__(self, user_classes: list, host: str, csv_prefix: str | None = None, finished: Event | None = None):
        # stop_timeout lets a user finish the message in flight when the run ends: a
        # message the server took but Locust never counted would break the totals.
        self.environment = Environment(user_classes=user_classes, host=host, events=events, stop_timeout=STOP_TIMEOUT)
        self.runner = self.environment.create_local_runner()
        self.csv = LocustCsv(self.environment, csv_prefix) if csv_prefix else None
        self.finished = finished or Event()  # set it to end the run early
        self.started_at = self.stopped_at = None

    @property
    def stats(self):
        return self.environment.stats

    def run(self, users: int, spawn_rate: float, duration: float | None = None, on_tick=None, tick: float = 1.0):
        """Spawn `users`, run until `duration` seconds pass or `finished` is set, then stop them all."""
        if self.csv is not None:
            self.csv.start()
        self.started_at = time.time()
        deadline = None if duration is None else time.monotonic() + duration
        self.runner.start(users, spawn_rate)
        try:
            while not self.finished.is_set():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self.finished.wait(tick if left is None else min(tick, left))
                if on_tick is not None:
                    on_tick(self)
        finally:
            self.runner.quit()  # stops every user (on_stop runs: sessions end with QUIT)
            self.stopped_at = time.time()
            if self.csv is not None:
                self.csv.finish()
