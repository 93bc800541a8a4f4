"""A plain Locust user on Python's smtplib: the reference point of the benchmark.

What a Locust user on the standard library does, with no loadkit code:
``smtplib.SMTP`` per user, ``sendmail()`` per task, one request event per
message. Run headless by bench/run.py; settings come from the environment:

    BENCH_MESSAGES   messages to send in all; the run stops when they are done
    BENCH_REUSE      1: one connection per user for the whole run;
                     0: a new connection (and QUIT) per message
    BENCH_LENGTH     body bytes, headers not included (default 5120)

    BENCH_MESSAGES=2000 BENCH_REUSE=1 locust -f bench/smtplib_locustfile.py \\
        --headless -u 20 -r 20 -H smtp://127.0.0.1:2525 --only-summary
"""

from __future__ import annotations

import os
import smtplib
from time import perf_counter

import gevent
from locust import User, constant, events, task

MESSAGES = int(os.environ.get("BENCH_MESSAGES", "1000"))
REUSE = os.environ.get("BENCH_REUSE", "1") == "1"
LENGTH = int(os.environ.get("BENCH_LENGTH", "5120"))
SENDER = "bench@loadkit.test"
RECIPIENT = "sink@loadkit.test"


def _message(length: int) -> bytes:
    """Headers plus exactly ``length`` body bytes of 76-character CRLF lines."""
    headers = f"From: <{SENDER}>\r\nTo: <{RECIPIENT}>\r\nSubject: bench\r\n\r\n".encode()
    line = b"x" * 76 + b"\r\n"
    body = (line * (length // len(line) + 1))[:length]
    if length >= 2:
        body = body[:-2] + b"\r\n"
    return headers + body


MESSAGE = _message(LENGTH)
_claimed = 0
_finished = 0
_failed = 0


@events.request.add_listener
def _stop_when_done(exception=None, **_kwargs):
    global _finished, _failed
    _finished += 1
    if exception is not None:
        _failed += 1
    if _finished == MESSAGES:
        runner = _runner
        if runner is not None:
            gevent.spawn(runner.quit)


_runner = None


@events.init.add_listener
def _remember_runner(environment, **_kwargs):
    global _runner
    _runner = environment.runner


@events.quitting.add_listener
def _report(**_kwargs):
    """One line for bench/run.py to check the count by."""
    print(f"smtplib bench: {_finished - _failed} delivered, {_failed} failed", flush=True)


class SmtplibUser(User):
    wait_time = constant(0)

    def on_start(self):
        address = self.host.split("://", 1)[-1]
        self.server, _, port = address.rpartition(":")
        self.port = int(port)
        self.smtp = smtplib.SMTP(self.server, self.port) if REUSE else None

    def on_stop(self):
        if self.smtp is not None:
            try:
                self.smtp.quit()
            except smtplib.SMTPException:
                pass

    @task
    def send(self):
        global _claimed
        if _claimed >= MESSAGES:
            gevent.sleep(0.05)  # idle until the run stops: a user that stopped itself makes Locust complain
            return
        _claimed += 1
        error = None
        start = perf_counter()
        try:
            if REUSE:
                self.smtp.sendmail(SENDER, [RECIPIENT], MESSAGE)
            else:
                with smtplib.SMTP(self.server, self.port) as smtp:
                    smtp.sendmail(SENDER, [RECIPIENT], MESSAGE)
        except (smtplib.SMTPException, OSError) as failure:
            error = failure
        self.environment.events.request.fire(
            request_type="SMTP", name="sendmail", response_time=(perf_counter() - start) * 1000.0,
            response_length=len(MESSAGE), exception=error, context={},
        )
