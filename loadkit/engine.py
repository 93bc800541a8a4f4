"""Locust, headless, inside this process: the engine under `loadkit source` and `loadkit demo`.

Running the Environment in-process (rather than the `locust` command in a
subprocess) saves the start-up and lets the caller end the run on its own
terms: after a duration, or when a budget of messages is spent.

Ctrl-C (SIGINT) during a run ends it as if it were over: the users finish the
message in flight and stop, and the caller reports what was measured, marked
interrupted (`interrupted`). A second Ctrl-C stops the users at once.
"""

from __future__ import annotations

import signal
import time

import gevent
from gevent.event import Event
from locust import events
from locust.env import Environment

from loadkit.metrics._csv import LocustCsv

STOP_TIMEOUT = 30.0  # seconds; the users' default network timeout


class _StopNow(BaseException):
    """Thrown into the main greenlet by a second Ctrl-C while it waits for the users to stop."""


class HeadlessRun:
    """One headless Locust run of `user_classes` against `host`."""

    def __init__(self, user_classes: list, host: str, csv_prefix: str | None = None, finished: Event | None = None):
        # stop_timeout lets a user finish the message in flight when the run ends: a
        # message the server took but Locust never counted would break the totals.
        self.environment = Environment(user_classes=user_classes, host=host, events=events, stop_timeout=STOP_TIMEOUT)
        self.runner = self.environment.create_local_runner()
        # Locust's CSV files that cannot be written (a full disk) end the run, as the recording's do.
        self.csv = LocustCsv(self.environment, csv_prefix, on_write_failure=self._write_failed) if csv_prefix else None
        self.write_failure = None  # the one-line error of the first failed write
        self.finished = finished or Event()  # set it to end the run early
        self.started_at = self.stopped_at = None
        self.interrupts = 0  # Ctrl-C presses during the run
        self._quitting = False

    @property
    def interrupted(self) -> bool:
        return self.interrupts > 0

    @property
    def stats(self):
        return self.environment.stats

    def run(self, users: int, spawn_rate: float, duration: float | None = None, on_tick=None, tick: float = 1.0):
        """Spawn `users`, run until `duration` seconds pass or `finished` is set, then stop them all."""
        if self.csv is not None:
            self.csv.start()
        self.started_at = time.time()
        deadline = None if duration is None else time.monotonic() + duration
        # In the hub, never as a KeyboardInterrupt: raised inside a greenlet, that
        # one prints a traceback and loses the run's numbers.
        interrupt = gevent.signal_handler(signal.SIGINT, self._interrupt)
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
            self._forget_ended_users()
            self._quitting = True
            try:
                self.runner.quit()  # stops every user (on_stop runs: sessions end with QUIT)
            except _StopNow:  # a second Ctrl-C: messages in flight are not waited for
                self.runner.user_greenlets.kill(block=False)
            interrupt.cancel()
            self.stopped_at = time.time()
            if self.csv is not None:
                self.csv.finish()

    def _forget_ended_users(self) -> None:
        """Drop users that ended themselves (StopUser) from the runner before it stops the rest.

        gevent clears a finished greenlet's args at once, but Locust's group forgets
        it only in a callback of a later turn of the loop: stopping users in between
        logs each such user as "a user that didn't have proper args". Spawning is
        ended first, since ending it lets more users finish.
        """
        spawning = self.runner.spawning_greenlet
        if spawning is not None and not spawning.ready():
            spawning.kill(block=True)
        for user_greenlet in list(self.runner.user_greenlets):
            if user_greenlet.dead:
                self.runner.user_greenlets.discard(user_greenlet)

    def _interrupt(self) -> None:
        self.interrupts += 1
        if self.interrupts == 1:
            self.finished.set()
        elif self._quitting:  # the main greenlet waits in runner.quit() for messages in flight: end that
            gevent.get_hub().parent.throw(_StopNow)

    def _write_failed(self, error) -> None:
        self.write_failure = error
        self.finished.set()
