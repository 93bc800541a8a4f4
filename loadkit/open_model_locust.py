"""Open-model load on Locust: a target rate per run, the users as the session pool.

    locust -f locustfiles/smtp.py -H smtp://127.0.0.1:2525 --headless -u 50 -t 1m --rate 200
    locust ... --rate 50:30s,200:2m --arrival poisson --max-sessions 20 --overload drop

Options (also in locust.conf and the web UI's start form):

    --rate PLAN          messages/s: 200, or stages 50:30s,200:2m (see loadkit.arrivals)
    --arrival SPACING    even (default) or poisson
    --arrival-seed N     seed of the Poisson gaps (one schedule on every worker)
    --max-sessions N     at most N messages in flight per process (default: its users)
    --overload POLICY    queue (default: lag grows, counted in corrected latency) or drop

A staged plan (``50:30s,200:2m``) ends the test when it is over, as -t
would (a constant one runs until -t or a stop). Without --rate nothing changes: the users loop on their wait_time (closed
model). With it, each process owns one ``SessionPool``: an
``OpenModelRunner`` keeps the schedule, and every arrival is handed to a
free user, which runs one task for it. A user's wait_time becomes "wait for
the next arrival", so `-u` (capped by --max-sessions) is the session pool.

Distributed, the master tells each worker its share (``SPLIT_MESSAGE``:
index, count, the schedule's origin on the wall clock, from when): worker i
of n takes global arrival k when k % n == i. When a worker joins or is lost
the master sends a new split that starts RESPLIT_AHEAD seconds ahead, so
the sum stays even and the survivors take the whole rate.

Each message fires Locust's request event once, with response_time = the
corrected latency (done - intended): in open mode that is what a real
arrival stream sees, and Locust's UI then never hides a stall. The service
time (done - sent) and the lag (sent - intended) go in as the pseudo-phases
``service`` and ``lag`` of the message, so they are HdrHistograms per
interval, merged across workers like every phase. Offered, sent and dropped
arrivals are counted per interval as series of kind ``open``
(``loadkit.metrics._open_model``).
"""

from __future__ import annotations

import logging
import sys
import time
import weakref

import gevent
from gevent.event import AsyncResult, Event
from gevent.queue import Queue

from loadkit.arrivals import ARRIVALS, ArrivalError, WorkerArrivals, parse_rate_plan
from loadkit.loop_clock import call_later
from loadkit.open_model import POLICIES, RATE_REACHED_BOUND, OpenModelError
from loadkit.open_model_runner import OpenModelRunner

log = logging.getLogger(__name__)

__all__ = [
    "RATE_NOT_REACHED",
    "RESPLIT",
    "SPLIT_MESSAGE",
    "OpenModelSession",
    "OpenModelSettings",
    "SessionPool",
    "add_options",
    "pool_of",
    "register_open_model",
    "settings_from_options",
    "start_pool",
]

SPLIT_MESSAGE = "loadkit_open_split"  # master -> worker: {index, count, origin, from_time}
RESPLIT = "open_model_resplit"  # the event recorded when the rate is split anew among workers
RATE_NOT_REACHED = "rate_not_reached"  # integrity event: the run sent less than RATE_REACHED_BOUND of its offer
RESPLIT_AHEAD = 0.5  # seconds: a new split starts this far ahead, so every worker has it in time
START_AHEAD = 1.0  # seconds: the schedule starts this far after the test, so the users are there
WATCH_EVERY = 0.25  # seconds between a master's looks at its workers
SESSION_PHASES = ("service", "lag")  # pseudo-phases of an open-model message


def add_options(parser) -> None:
    parser.add_argument("--rate", default="", metavar="PLAN", include_in_web_ui=True,
                        help="loadkit: open model: messages/s, 200 or stages 50:30s,200:2m; "
                             "empty: closed model (users loop on wait_time)")
    parser.add_argument("--arrival", default="even", choices=ARRIVALS, include_in_web_ui=True,
                        help="loadkit: open model: arrivals evenly spaced or poisson")
    parser.add_argument("--arrival-seed", type=int, default=None, metavar="N", include_in_web_ui=False,
                        help="loadkit: open model: seed of the poisson gaps")
    parser.add_argument("--max-sessions", type=int, default=0, metavar="N", include_in_web_ui=True,
                        help="loadkit: open model: messages in flight per process at most (0: its users)")
    parser.add_argument("--overload", default="queue", choices=POLICIES, include_in_web_ui=True,
                        help="loadkit: open model: an arrival that finds no free session waits (queue) "
                             "or is counted dropped (drop)")


class OpenModelSettings:
    """--rate and its companions, checked once."""

    def __init__(self, rate: str, arrival: str = "even", seed: int | None = None, max_sessions: int = 0,
                 overload: str = "queue"):
        self.plan = parse_rate_plan(rate)
        if arrival not in ARRIVALS:
            raise ArrivalError(f"unknown arrival spacing {arrival!r}: even or poisson")
        if overload not in POLICIES:
            raise OpenModelError(f"unknown overload policy {overload!r}: queue or drop")
        if max_sessions is not None and max_sessions < 0:
            raise OpenModelError(f"--max-sessions must be 0 (the users) or more, not {max_sessions}")
        self.arrival, self.seed, self.overload = arrival, seed, overload
        self.max_sessions = max_sessions or None


def settings_from_options(options) -> OpenModelSettings | None:
    """The open-model settings of Locust's parsed options; None for a closed-model run."""
    rate = str(getattr(options, "rate", "") or "").strip()
    if not rate:
        return None
    return OpenModelSettings(rate, options.arrival, options.arrival_seed, options.max_sessions, options.overload)


class SessionPool:
    """One process's schedule and its users: each arrival goes to a free user, which sends it."""

    def __init__(self, settings: OpenModelSettings):
        self.settings = settings
        self.users: set = set()
        self._handoff: Queue = Queue()
        self._current: dict = {}  # user -> (arrival, AsyncResult) it works on
        self._stop = Event()
        self._greenlet = None
        self.runner: OpenModelRunner | None = None
        self.origin = 0.0
        self.summary = None
        self.elapsed = 0.0  # seconds of the schedule, once stopped
        self._clocks = (None, None)  # cpu_clocks() at the schedule's origin and at its stop
        self._cap(0)

    # -- the users' side ------------------------------------------------
    def join(self, user) -> None:
        self.users.add(user)
        self._cap()

    def leave(self, user) -> None:
        self.users.discard(user)
        self.finish(user)
        self._cap()

    def _cap(self, users: int | None = None) -> None:
        users = len(self.users) if users is None else users
        limit = self.settings.max_sessions
        self.cap = max(min(users, limit) if limit else users, 1)
        if self.runner is not None:
            self.runner.dispatcher.max_sessions = self.cap

    def take(self, user):
        """Block until an arrival is handed to `user`; its intended time on the wall clock."""
        self.finish(user)
        handed = self._handoff.get() if not self._stop.is_set() else None
        if handed is None:  # the test is stopping
            from locust.exception import StopUser  # here: importing locust patches the whole process

            raise StopUser()
        arrival, done = handed
        arrival.sent = self.runner.now()  # the message starts now, whatever the hand-off took
        self._current[user] = (arrival, done)
        return self.origin + arrival.intended

    def finish(self, user) -> None:
        """`user` is done with its arrival (if any): its session is free again."""
        current = self._current.pop(user, None)
        if current is not None:
            current[1].set()

    # -- the schedule's side --------------------------------------------
    def _work(self, arrival) -> None:
        done = AsyncResult()
        self._handoff.put((arrival, done))
        done.get()

    def start(self, index: int = 0, count: int = 1, origin: float | None = None,
              from_time: float = float("-inf")) -> None:
        settings = self.settings
        self.origin = time.time() + START_AHEAD if origin is None else origin
        schedule = WorkerArrivals(settings.plan, settings.arrival, settings.seed, index, count, from_time)
        self.runner = OpenModelRunner(self._work, schedule, self.cap, settings.overload, clock=time.time)
        self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        wait = self.origin - time.time()
        if wait > 0:
            gevent.sleep(wait)
        self._clocks = (cpu_clocks(), None)
        self.summary = self.runner.run(self._stop, origin=self.origin, drain_timeout=5.0)

    def resplit(self, index: int, count: int, from_time: float) -> None:
        if self.runner is not None:
            self.runner.resplit(index, count, from_time)

    def generator_load(self) -> dict:
        """This process's CPU over the schedule, % of one core: `generator_cpu` used, `generator_demand`
        used or waited for in the run queue (a generator starved by a busy machine is saturated too)."""
        start, stop = self._clocks
        if start is None:
            return {}
        stop = stop or cpu_clocks()
        wall = stop[2] - start[2]
        if wall <= 0:
            return {}
        load = {"generator_cpu": round((stop[0] - start[0]) / wall * 100, 1)}
        if start[1] is not None and stop[1] is not None:
            load["generator_demand"] = round((stop[0] - start[0] + stop[1] - start[1]) / wall * 100, 1)
        return load

    @property
    def counts(self):
        return self.runner.dispatcher.counts if self.runner is not None else None

    def stop(self) -> None:
        """Start nothing more; users waiting for an arrival stop."""
        if self._stop.is_set():
            return
        self._stop.set()
        self.elapsed = max(time.time() - self.origin, 0.0)
        if self._clocks[0] is not None:
            self._clocks = (self._clocks[0], cpu_clocks())
        for user in list(self._current):
            self.finish(user)
        for _ in range(len(self.users)):
            self._handoff.put(None)


class OpenModelSession:
    """Mixin for a Locust user: in an open-model run it takes arrivals instead of looping on wait_time.

    Call `join_open_model()` at the end of on_start and `leave_open_model()`
    in on_stop; `intended` is the wall-clock time the current arrival was
    meant to start (None in a closed-model run). ``SmtpUser`` does all this;
    an HTTP user takes it as in locustfiles/apache_open.py.
    """

    _open_pool: SessionPool | None = None
    intended: float | None = None

    def join_open_model(self) -> None:
        pool = pool_of(self.environment)
        if pool is None:
            return
        self._open_pool = pool
        self.wait_time = self._wait_for_arrival  # this user's wait is now "until the next arrival"
        pool.join(self)
        self._take_arrival()

    def _take_arrival(self) -> None:
        from locust.user.task import LOCUST_STATE_RUNNING, LOCUST_STATE_WAITING

        state, self._state = self._state, LOCUST_STATE_WAITING  # a stopping test may kill a waiting user
        self.intended = self._open_pool.take(self)
        if self._state == LOCUST_STATE_WAITING:
            self._state = state if state != LOCUST_STATE_WAITING else LOCUST_STATE_RUNNING

    def _wait_for_arrival(self) -> float:
        self.intended = self._open_pool.take(self)
        return 0.0

    def leave_open_model(self) -> None:
        if self._open_pool is not None:
            self._open_pool.leave(self)


def cpu_clocks() -> tuple[float, float | None, float]:
    """(CPU seconds, seconds runnable but waiting for a CPU, monotonic seconds) of this process's main thread."""
    try:  # Linux: the thread's CPU time and run-queue delay, in ns (gevent runs on this one thread)
        with open("/proc/thread-self/schedstat") as handle:
            waited = int(handle.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        waited = None
    return time.thread_time(), waited, time.monotonic()


_pools: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # environment -> SessionPool


def pool_of(environment) -> SessionPool | None:
    """The session pool of `environment`'s current open-model test (None in a closed-model run)."""
    return _pools.get(environment)


def start_pool(environment, settings: OpenModelSettings) -> SessionPool:
    """Give `environment` a pool and start its schedule now (Locust run in-process: ``loadkit source``)."""
    pool = _pools[environment] = SessionPool(settings)
    pool.start(origin=time.time())
    return pool


def describe_rate(pool: SessionPool) -> str:
    """One line: offered, sent and dropped, in all and per second of the (stopped) schedule."""
    counts, elapsed = pool.counts, pool.elapsed
    per_second = (lambda n: n / elapsed) if elapsed > 0 else (lambda n: 0.0)
    return (f"rate: {counts.offered} offered ({per_second(counts.offered):.1f}/s), {counts.started} sent "
            f"({per_second(counts.started):.1f}/s), {counts.dropped} dropped")


def any_pool() -> SessionPool | None:
    """The pool of this process (one Locust environment per process)."""
    for pool in list(_pools.values()):
        return pool
    return None


class _OpenModelListeners:
    def __init__(self, results):
        self.results = results  # loadkit.metrics.plugin's Results: where events go
        self.settings: OpenModelSettings | None = None
        self.splits: dict[str, tuple[int, int]] = {}
        self._watcher = None
        self._plan_end = None
        self.wire_settings: dict = {}  # a master's open-model options, sent to its workers with their split

    def on_init(self, environment, runner=None, **_kwargs) -> None:
        from locust.runners import WorkerRunner

        options = environment.parsed_options
        if options is None or not hasattr(options, "rate"):
            return
        try:
            self.settings = settings_from_options(options)
        except (ArrivalError, OpenModelError) as error:
            if isinstance(runner, WorkerRunner):
                log.error("loadkit: %s", error)
                return
            print(f"loadkit: {error}", file=sys.stderr)
            sys.exit(2)
        if isinstance(runner, WorkerRunner):
            runner.register_message(SPLIT_MESSAGE, self.on_split)

    def _settings(self, environment) -> OpenModelSettings | None:
        # the web UI's form may have set --rate after init
        try:
            return settings_from_options(environment.parsed_options)
        except (ArrivalError, OpenModelError) as error:
            log.error("loadkit: %s", error)
            return None

    def on_test_start(self, environment, **_kwargs) -> None:
        from locust.runners import MasterRunner, WorkerRunner

        runner = environment.runner
        if isinstance(runner, WorkerRunner) or environment.parsed_options is None:
            return  # a worker: the master's split starts its pool; in-process Locust: the caller's pool
        settings = self._settings(environment)
        if settings is None:
            _pools.pop(environment, None)
            return
        origin = time.time() + START_AHEAD
        if settings.plan.duration < float("inf"):
            self._plan_end = call_later(origin + settings.plan.duration - time.time(), _end_test, environment)
        if isinstance(runner, MasterRunner):
            self.splits = {}
            options = environment.parsed_options
            # the workers' own options may lack --rate (the master's reach them with the spawn message, later)
            self.wire_settings = {"rate": str(options.rate), "arrival": options.arrival, "seed": options.arrival_seed,
                                  "max_sessions": options.max_sessions, "overload": options.overload}
            self._split(environment, origin, first=True)  # before the master sends its spawn messages
            self._watcher = gevent.spawn(self._watch_workers, environment, origin)
            return
        pool = _pools[environment] = SessionPool(settings)
        pool.start(origin=origin)

    def on_split(self, environment, msg, **_kwargs) -> None:
        data = msg.data
        pool = _pools.get(environment)
        if data.get("start") or pool is None or pool.runner is None:
            try:
                settings = OpenModelSettings(**data["settings"])
            except (ArrivalError, OpenModelError) as error:
                log.error("loadkit: %s", error)
                return
            old = pool
            pool = _pools[environment] = SessionPool(settings)
            if old is not None:  # users already spawned keep their places
                pool.users = old.users
                old.stop()
            pool._cap()
            pool.start(data["index"], data["count"], data["origin"], data["from_time"])
        else:
            pool.resplit(data["index"], data["count"], data["from_time"])

    def _split(self, environment, origin: float, first: bool) -> None:
        """Send each worker its share when the workers changed (all of them at the test's start)."""
        from locust.runners import STATE_MISSING

        runner = environment.runner
        workers = sorted(client.id for client in runner.clients.values() if client.state != STATE_MISSING)
        split = {worker: (index, len(workers)) for index, worker in enumerate(workers)}
        if not workers or split == self.splits:
            return
        from_time = float("-inf") if first else max(time.time() + RESPLIT_AHEAD - origin, 0.0)
        for worker, (index, count) in split.items():
            data = {"index": index, "count": count, "origin": origin, "from_time": from_time,
                    "start": first or worker not in self.splits, "settings": self.wire_settings}
            try:
                runner.send_message(SPLIT_MESSAGE, data, client_id=worker)
            except Exception as error:  # noqa: BLE001 - a lost worker is the watch's to record
                log.warning("loadkit: cannot send the rate split to %s: %s", worker, error)
        if not first:
            self.results.record_event(environment, RESPLIT, f"rate split among {len(workers)} worker(s) "
                                               f"from {from_time:.1f} s of the schedule on")
        self.splits = split

    def _watch_workers(self, environment, origin: float) -> None:
        while True:
            gevent.sleep(WATCH_EVERY)
            self._split(environment, origin, first=False)

    def on_test_stop(self, environment, **_kwargs) -> None:
        if self._plan_end is not None and self._plan_end is not gevent.getcurrent():
            self._plan_end.kill(block=False)
        self._plan_end = None
        if self._watcher is not None:
            self._watcher.kill(block=False)
            self._watcher = None
        pool = _pools.get(environment)
        if pool is not None:
            pool.stop()


def _end_test(environment) -> None:
    """A staged plan is over: the test ends with it (a headless run quits, as at its -t)."""
    options = environment.parsed_options
    log.info("loadkit: the rate plan is over, %s", "shutting down" if options.headless else "stopping the test")
    if options.headless:
        environment.runner.quit()
    else:
        environment.runner.stop()


_registered: weakref.WeakSet = weakref.WeakSet()


def register_open_model(events, results) -> None:
    """Add the open model's listeners to Locust's `events` (once); events are recorded through `results`."""
    if events in _registered:
        return
    _registered.add(events)
    listeners = _OpenModelListeners(results)
    events.init.add_listener(listeners.on_init)
    events.test_start.add_listener(listeners.on_test_start)
    events.test_stopping.add_listener(listeners.on_test_stop)
    events.test_stop.add_listener(listeners.on_test_stop)


def rate_verdict(offered: int, sent: int, cpu_high: bool) -> str | None:
    """The detail of a rate_not_reached event, or None when the rate was reached."""
    if offered <= 0 or sent >= RATE_REACHED_BOUND * offered:
        return None
    cause = "generator-limited: the generator's CPU was saturated" if cpu_high else "sessions or server too slow"
    return f"sent {sent} of {offered} offered ({sent / offered:.1%}, under {RATE_REACHED_BOUND:.0%}): {cause}"
