"""The closed model at a set pace: each user sends one message every PACE seconds (Locust's constant_pacing)."""

import os

from locust import constant_pacing, task

from loadkit.users import SmtpUser

PACE = float(os.environ.get("LOADKIT_TEST_PACE", "0.05"))


class PacedSender(SmtpUser):
    wait_time = constant_pacing(PACE)
    messages_per_connection = 0

    @task
    def send_mail(self):
        self.send("send")
