"""smtp.py's user for test targets: the sink's self-signed certificate is accepted."""

from locust import constant, task

import loadkit.plugin  # noqa: F401  (the results folder)
from loadkit.users import SmtpUser


class TestTargetSender(SmtpUser):
    wait_time = constant(0)
    messages_per_connection = 10
    payload_size = 1024
    tls_verify = False

    @task
    def send_mail(self):
        self.send("send")
