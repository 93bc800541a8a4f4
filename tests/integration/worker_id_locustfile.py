"""A locustfile for tests: locustfiles/smtp.py's sender, and each worker's Locust id
written to WORKER_IDS_DIR/<pid> so a test knows which process is which worker."""

import os

from locust import constant, events, task
from locust.runners import WorkerRunner

import loadkit.plugin  # noqa: F401  (the results folder, --check)
from loadkit.users import SmtpUser


@events.init.add_listener
def _write_worker_id(environment, runner=None, **_kwargs):
    if isinstance(runner, WorkerRunner) and os.environ.get("WORKER_IDS_DIR"):
        with open(os.path.join(os.environ["WORKER_IDS_DIR"], str(os.getpid())), "w") as handle:
            handle.write(runner.client_id)


class MailSender(SmtpUser):
    wait_time = constant(0)
    messages_per_connection = 10
    payload_size = 5120

    @task
    def send_mail(self):
        self.send("send")
