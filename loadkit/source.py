"""``loadkit source``: Postfix's smtp-source, on the Locust engine.

    loadkit source [options] [inet:]host[:port]
    loadkit source [options] unix:pathname

Options keep smtp-source's letters and meanings:

    -s sessions     sessions in parallel (default 1)
    -m count        messages to send in all (default 1)
    -l length       body length in bytes, headers not included (default 5120 here;
                    smtp-source's default message is tiny)
    -L              speak LMTP
    -d              keep the connection: send the next message over it
    -r count        recipients per transaction, numbered 1..count (default 1)
    -f from         sender address (default foo@myhostname)
    -t to           recipient address (default foo@myhostname)
    -N              prefix every recipient with a number that never repeats
    -M myhostname   name for EHLO/LHLO and the default addresses
    -S subject      Subject of every message
    -c              running count of completed messages
    -A              don't abort on a failure; count it and go on
    -w seconds      wait this long between messages, per session
    -R seconds      wait a random 0..seconds between messages, per session

Open model (beyond smtp-source): --rate R starts R messages a second,
whatever the server's pace; the -s sessions take them (--max-sessions caps
them), and an arrival that finds none free waits (--overload queue) or is
dropped and counted (--overload drop). Latencies are then counted from each
message's intended time (corrected).

ESMTP options beyond smtp-source: --starttls, --tls (implicit), --tls-no-verify,
--auth user:password, --auth-mechanism, --size/--no-size (declare SIZE=),
--utf8 (UTF-8 addresses, SMTPUTF8), --chunking (BDAT).

It sends exactly ``-m`` messages (failures included), then prints messages,
msgs/s delivered, exact latency percentiles of the delivered ones, those of
the failed ones apart, and failures by reply code and phase.
Exit status: 0 all delivered, 1 a failure (or an abort), 2 bad input,
130 interrupted (Ctrl-C: the summary covers what was sent until then).
Unlike smtp-source it uses ESMTP and PIPELINING when the server offers them.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import random
import resource
import socket
import sys
import time
from array import array
from collections import Counter

from gevent.event import Event
from locust import constant, task
from locust.exception import StopUser
from locust.user.users import LOCUST_STATE_STOPPING

from loadkit.engine import HeadlessRun
from loadkit.errors import UsageError
from loadkit.hdr import percentile_of_sorted
from loadkit.urls import parse_endpoint
from loadkit.users import LmtpUser, SmtpUser, setup_problem


def add_arguments(parser):
    add = parser.add_argument
    add("-s", dest="sessions", type=int, default=1, metavar="sessions", help="sessions in parallel (default 1)")
    add("-m", dest="messages", type=int, default=1, metavar="count", help="messages to send in all (default 1)")
    add("-l", dest="length", type=int, default=5120, metavar="length", help="body bytes, headers not included (default 5120)")
    add("-L", dest="lmtp", action="store_true", help="speak LMTP rather than SMTP")
    add("-d", dest="reuse", action="store_true", help="send the next message over the same connection")
    add("-r", dest="recipients", type=int, default=1, metavar="count", help="recipients per transaction (default 1)")
    add("-f", dest="sender", metavar="from", help="sender address (default foo@myhostname)")
    add("-t", dest="recipient", metavar="to", help="recipient address (default foo@myhostname)")
    add("-N", dest="numbered", action="store_true", help="prefix recipients with a non-repeating number")
    add("-M", dest="myhostname", metavar="myhostname", help="EHLO/LHLO name and default address domain")
    add("-S", dest="subject", metavar="subject", help="Subject of every message")
    add("-c", dest="counter", action="store_true", help="show a running count of completed messages")
    add("-A", dest="keep_going", action="store_true", help="don't abort on failures")
    add("-w", dest="wait", type=float, default=0.0, metavar="seconds", help="fixed wait between messages")
    add("-R", dest="random_wait", type=float, default=0.0, metavar="seconds", help="random wait 0..seconds between messages")
    opened = parser.add_argument_group("open model (beyond smtp-source)")
    opened.add_argument("--rate", type=float, default=None, metavar="R", help="start R messages a second")
    opened.add_argument("--max-sessions", type=int, default=0, metavar="N", help="at most N in flight (default -s)")
    opened.add_argument("--overload", choices=("queue", "drop"), default="queue",
                        help="an arrival with no free session waits (queue) or is dropped (drop)")
    esmtp = parser.add_argument_group("ESMTP (beyond smtp-source)")
    esmtp.add_argument("--starttls", action="store_true", help="require STARTTLS before MAIL")
    esmtp.add_argument("--tls", action="store_true", help="implicit TLS from the first byte (port 465)")
    esmtp.add_argument("--tls-no-verify", action="store_true", help="accept any server certificate (test targets)")
    esmtp.add_argument("--auth", metavar="user:password", help="AUTH with these credentials")
    esmtp.add_argument("--auth-mechanism", metavar="NAME", help="PLAIN, LOGIN or CRAM-MD5 (default: the first offered)")
    esmtp.add_argument("--size", action=argparse.BooleanOptionalAction, default=True,
                       help="declare each message's size on MAIL when the server offers SIZE (default on)")
    esmtp.add_argument("--utf8", action="store_true", help="UTF-8 envelope addresses (needs SMTPUTF8)")
    esmtp.add_argument("--chunking", action="store_true", help="BDAT instead of DATA when the server offers CHUNKING")
    esmtp.add_argument("--mail-profile", dest="mail_profile", metavar="SETTINGS",
                       help='sizes, MIME kinds, recipients, domains, e.g. "size=mix:realistic mime=attachments:0.2,html:0.3 '
                            'recipients=1:80,2:15,5:5 domains=example.com:60,*:40" (size= replaces -l, recipients= and domains= -r)')
    add("target", metavar="[inet:]host[:port] | unix:pathname")


INTERRUPTED = 128 + 2  # the shell's status for a command ended by SIGINT
# Beyond these a run makes no sense on one machine (a session is a socket; a
# message must fit in memory once) or would wait longer than anyone would.
MAX_RECIPIENTS = 1_000_000
MAX_WAIT = 86_400.0  # seconds: a day between two messages


def open_files_limit() -> int:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 1 << 34


def check_range(flag: str, value, least, most, why: str = "") -> None:
    """UsageError unless `value` is a finite number in least..most."""
    if isinstance(value, float) and not math.isfinite(value):
        raise UsageError(f"{flag} {value}: not a finite number")
    if value < least:
        raise UsageError(f"{flag} {value}: must be at least {least}")
    if most is not None and value > most:
        raise UsageError(f"{flag} {value}: must be at most {most}{why}")


def check_text(flag: str, value: str | None, what: str) -> None:
    """UsageError for an empty value, or one with spaces or control characters (they would
    end the SMTP command or header line early and start another)."""
    if value is None:
        return
    if not value:
        raise UsageError(f"{flag} '': {what} cannot be empty")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise UsageError(f"{flag} {value!r}: {what} cannot hold spaces or control characters")


def check_arguments(args):
    sessions_most = max(1, open_files_limit() - 64)
    length_most = _memory_bytes() // 4
    for value, flag, least, most, why in (
        (args.sessions, "-s", 1, sessions_most, " (each session holds a socket: see ulimit -n)"),
        (args.messages, "-m", 1, None, ""),
        (args.length, "-l", 0, length_most, " (a quarter of this machine's memory)"),
        (args.recipients, "-r", 1, MAX_RECIPIENTS, ""),
        (args.wait, "-w", 0, MAX_WAIT, " seconds"), (args.random_wait, "-R", 0, MAX_WAIT, " seconds"),
    ):
        check_range(flag, value, least, most, why)
    check_text("-f", args.sender, "the sender")
    check_text("-t", args.recipient, "the recipient")
    check_text("-M", args.myhostname, "the host name")
    if args.subject is not None and any(ch in args.subject for ch in "\r\n\0"):
        raise UsageError(f"-S {args.subject!r}: the subject is one line")
    check_text("--auth-mechanism", args.auth_mechanism, "the mechanism")
    if args.rate is not None and not args.rate > 0:
        raise UsageError(f"--rate {args.rate:g}: must be above 0")
    if args.max_sessions < 0:
        raise UsageError(f"--max-sessions {args.max_sessions}: must be at least 0")
    if args.tls and args.starttls:
        raise UsageError("--tls and --starttls exclude each other: TLS from the start, or upgraded after EHLO")
    if args.auth is not None and (":" not in args.auth or not args.auth.partition(":")[0]):
        raise UsageError("--auth takes user:password")  # never the value itself: it holds a password
    if not args.target.strip():
        raise UsageError("the target is empty: give [inet:]host[:port] or unix:pathname")
    target = parse_endpoint(args.target, "lmtp" if args.lmtp else "smtp")
    if args.tls:
        target = dataclasses.replace(target, tls="implicit")
    if not target.is_unix:
        try:
            socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        except socket.gaierror as error:
            raise UsageError(f"cannot resolve {target.host}: {error.strerror}") from None
    return target


class Budget:
    """Exactly -m messages across all sessions: claimed before sending, settled after."""

    def __init__(self, total: int, finished):
        self.left = total
        self.in_flight = 0
        self.finished = finished

    def claim(self) -> bool:
        if self.left <= 0 or self.finished.is_set():
            return False
        self.left -= 1
        self.in_flight += 1
        return True

    def settle(self) -> None:
        self.in_flight -= 1
        if self.left <= 0 and self.in_flight == 0:
            self.finished.set()


class Tally:
    """The request listener of a source run: exact latencies and the first failure."""

    def __init__(self, keep_going: bool, finished):
        self.latencies = array("d")  # accepted messages
        self.failed_latencies = array("d")
        self.failures = 0
        self.delivered_recipients = 0
        self.first_error = None
        self.errors = Counter()  # by reply code and phase: "550 5.1.1 at RCPT"
        self.keep_going = keep_going
        self.finished = finished

    def on_request(self, response_time, exception, context, **_kwargs):
        if exception is None:
            self.latencies.append(response_time)
            self.delivered_recipients += context["delivered"]
            return
        self.failed_latencies.append(response_time)
        self.failures += 1
        self.errors[repr(exception)] += 1
        self.delivered_recipients += context.get("delivered", 0)
        if self.first_error is None:
            self.first_error = exception
        if not self.keep_going:
            self.finished.set()


def source_user_class(args, budget: Budget):
    base = LmtpUser if args.lmtp else SmtpUser
    myhostname = args.myhostname or socket.gethostname()
    default_address = f"{'föö' if args.utf8 else 'foo'}@{myhostname}"
    username, _, password = (args.auth or "").partition(":")
    pause = args.wait or args.random_wait

    open_model = args.rate is not None

    class SourceUser(base):
        abstract = False
        messages_per_connection = 0 if args.reuse else 1
        recipients_per_message = args.recipients
        numbered_recipients = args.numbered
        payload_size = args.length
        mail_from = args.sender or default_address
        rcpt_to = args.recipient or default_address
        helo_name = myhostname
        subject = args.subject
        wait_time = constant(0)
        starttls = args.starttls
        tls_verify = not args.tls_no_verify
        auth_mechanism = args.auth_mechanism
        declare_size = args.size
        chunking = args.chunking
        mail_profile = args.mail_profile

        @task
        def send_all(self):
            # Closed model: one task call sends until the budget is spent (Locust's task pick and its
            # zero wait, a switch to the hub, per message cost more than loadkit's own sending).
            # Open model (--rate): one message per call, since each call is one scheduled arrival.
            while budget.claim():
                try:
                    self.send("message")
                finally:
                    budget.settle()
                if open_model:
                    return
                if pause:  # cut short when the run ends (Ctrl-C, an abort): nothing to wait for then
                    budget.finished.wait(args.wait + random.uniform(0, args.random_wait))
                if self._state == LOCUST_STATE_STOPPING:  # stopped between messages, as Locust's wait would
                    break
            raise StopUser()

    if args.auth is not None:
        SourceUser.username, SourceUser.password = username, password
    return SourceUser


def run(args) -> int:
    target = check_arguments(args)
    # Locust's runner warns about a fast spawn rate and about users that stopped
    # themselves: both are how a source run is meant to work.
    logging.getLogger("locust.runners").setLevel(logging.ERROR)
    started = time.perf_counter()
    finished = Event()
    budget = Budget(args.messages, finished)
    tally = Tally(args.keep_going, finished)
    run_ = HeadlessRun([source_user_class(args, budget)], target.url(), finished=finished)
    problem = setup_problem(run_.environment)
    if problem:
        raise UsageError(problem)
    run_.environment.events.request.add_listener(tally.on_request)
    counter = _Counter(tally) if args.counter else None
    pool = None
    if args.rate is not None:
        from loadkit.open_model_locust import OpenModelSettings, start_pool

        pool = start_pool(run_.environment, OpenModelSettings(f"{args.rate:g}", max_sessions=args.max_sessions,
                                                              overload=args.overload))
    try:
        run_.run(args.sessions, spawn_rate=max(args.sessions * 10, 100), on_tick=counter, tick=0.2)
    finally:
        if pool is not None:
            pool.stop()
        run_.environment.events.request.remove_listener(tally.on_request)
        if counter:
            counter.done()
    elapsed = time.perf_counter() - started
    print_summary(args, tally, elapsed, interrupted=run_.interrupted)
    if pool is not None:
        from loadkit.open_model_locust import describe_rate

        print(describe_rate(pool) + "; latency counted from each message's intended time")
    if run_.interrupted:
        print(f"loadkit source: interrupted after {len(tally.latencies)} of {args.messages} messages",
              file=sys.stderr)
        return INTERRUPTED
    if tally.first_error is not None and not args.keep_going:
        print(f"loadkit source: error: {tally.first_error}", file=sys.stderr)
        return 1
    return 1 if tally.failures else 0


class _Counter:
    """smtp-source -c: a running count, redrawn a few times a second (never per message)."""

    def __init__(self, tally):
        self.tally = tally

    def __call__(self, _run):
        sys.stdout.write(f"\r{len(self.tally.latencies) - self.tally.failures}")
        sys.stdout.flush()

    def done(self):
        self(None)
        sys.stdout.write("\n")


def _percentiles_text(latencies) -> str:
    p50, p95, p99 = (percentile_of_sorted(latencies, p) for p in (50, 95, 99))  # every sample was kept
    return f"p50 {p50:.2f}  p95 {p95:.2f}  p99 {p99:.2f}  max {latencies[-1]:.2f}"


def print_summary(args, tally: Tally, elapsed: float, interrupted: bool = False) -> None:
    latencies = sorted(tally.latencies)
    ok = len(latencies)
    sent = ok + tally.failures
    rate = ok / elapsed if elapsed > 0 else 0.0
    print(
        f"loadkit source: {sent} messages ({ok} delivered, {tally.failures} failed), "
        f"{tally.delivered_recipients} recipients, in {elapsed:.2f} s: {rate:.0f} msgs/s delivered"
        + (" (interrupted)" if interrupted else "")
    )
    if latencies:
        print("latency ms: " + _percentiles_text(latencies))
    if tally.failed_latencies:
        failed_rate = tally.failures / elapsed if elapsed > 0 else 0.0
        print(f"failed ms: {_percentiles_text(sorted(tally.failed_latencies))}  ({failed_rate:.0f} msgs/s)")
    if tally.errors:
        print("failures:")
        for key, occurrences in tally.errors.most_common():
            print(f"  {occurrences:>8}  {key}")
