"""A generator that spends 2 ms of CPU on each message before sending it: past ~500/s it is its own limit."""

import time

from locust import constant, task

from loadkit.users import SmtpUser

BUSY = 0.002  # seconds of CPU per message


class CpuBoundSender(SmtpUser):
    wait_time = constant(0)
    messages_per_connection = 0

    @task
    def send_mail(self):
        end = time.process_time() + BUSY
        while time.process_time() < end:  # the generator's own work (templating, signing...), on its one core
            pass
        self.send("send")
