"""A locustfile for tests: locustfiles/smtp.py's sender with phase_stats on, so Locust's
own table and CSV get one SMTP-phase row per phase beside the messages."""

from locust import constant, task

from loadkit.users import SmtpUser


class MailSender(SmtpUser):
    wait_time = constant(0)
    messages_per_connection = 10
    payload_size = 5120
    phase_stats = True

    @task
    def send_mail(self):
        self.send("send")
