"""One connection per user for the whole run, so each message costs the sink's delay and little else."""

from locust import constant, task

from loadkit.users import SmtpUser


class KeptConnectionSender(SmtpUser):
    wait_time = constant(0)
    messages_per_connection = 0

    @task
    def send_mail(self):
        self.send("send")
