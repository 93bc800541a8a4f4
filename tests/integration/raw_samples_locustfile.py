"""A locustfile for tests: loadkit's SMTP user, plus every raw response time kept per process.

Each worker writes its samples to RAW_SAMPLES_DIR/<pid>.json when it stops, so
a test can compare the master's merged histograms with all the raw samples.
"""

import json
import os

from locust import constant, events, task

import loadkit.plugin  # noqa: F401  (the results folder, --check)
from loadkit.users import SmtpUser

_samples: list[float] = []


@events.request.add_listener
def _keep(request_type, response_time, **_kwargs):
    if request_type == "SMTP":
        _samples.append(response_time)


def _write(**_kwargs):
    if _samples:
        path = os.path.join(os.environ["RAW_SAMPLES_DIR"], f"{os.getpid()}.json")
        with open(path, "w") as handle:
            json.dump(_samples, handle)


events.test_stop.add_listener(_write)
events.quit.add_listener(_write)  # again at exit: after any message finished during the stop


class RawSampleSender(SmtpUser):
    wait_time = constant(0)
    messages_per_connection = 10
    payload_size = 2000

    @task
    def send_mail(self):
        self.send("send")
