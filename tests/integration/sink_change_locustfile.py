"""Paced senders, and the sink's faults changed CHANGE_AT seconds into the test through its control port.

The change is made where the results folder is written (a local runner or
the master) and recorded there as a sink_changed event, for the report to mark.
"""

import os

import gevent
from locust import constant_pacing, events, task
from locust.runners import WorkerRunner

from loadkit.metrics.plugin import record_event
from loadkit.results._events import SINK_CHANGED
from loadkit.sink._control import change_faults
from loadkit.users import SmtpUser

CONTROL_URL = os.environ["LOADKIT_TEST_SINK_CONTROL"]
CHANGE_AT = float(os.environ.get("LOADKIT_TEST_CHANGE_AT", "4"))
FAULTS = os.environ.get("LOADKIT_TEST_FAULTS", "delay data:50ms")


class PacedSender(SmtpUser):
    wait_time = constant_pacing(0.05)
    messages_per_connection = 0

    @task
    def send_mail(self):
        self.send("send")


@events.test_start.add_listener
def change_the_sink_midway(environment, **_kwargs):
    if isinstance(environment.runner, WorkerRunner):
        return

    def change() -> None:
        gevent.sleep(CHANGE_AT)
        made = change_faults(CONTROL_URL, FAULTS)
        record_event(environment, SINK_CHANGED, made["what"])

    gevent.spawn(change)
