"""A locustfile for tests: locustfiles/smtp.py's sender, and one worker that is slow to end its test.

The first worker to claim SLOW_WORKER_FILE writes its Locust id there; at
test_stop it then waits SLOW_WORKER_SECONDS before anything else (loadkit's
final report included) happens. It stays alive, heartbeats go on.
"""

import os

import gevent
from locust import constant, events, task
from locust.runners import WorkerRunner

import loadkit.plugin  # noqa: F401  (the results folder, --check)
from loadkit.users import SmtpUser

_slow = False


@events.init.add_listener
def _claim_slowness(environment, runner=None, **_kwargs):
    global _slow
    path = os.environ.get("SLOW_WORKER_FILE")
    if not isinstance(runner, WorkerRunner) or not path:
        return
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return
    with os.fdopen(descriptor, "w") as handle:
        handle.write(runner.client_id)
    _slow = True


@events.test_stop.add_listener
def _end_slowly(environment, **_kwargs):
    if _slow:
        gevent.sleep(float(os.environ["SLOW_WORKER_SECONDS"]))


class MailSender(SmtpUser):
    wait_time = constant(0)
    messages_per_connection = 10
    payload_size = 5120

    @task
    def send_mail(self):
        self.send("send")
