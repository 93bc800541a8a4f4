"""Send mail over SMTP.

    locust -f locustfiles/smtp.py -H smtp://127.0.0.1:2525
    locust -f locustfiles/smtp.py -H smtp://127.0.0.1:2525 --headless -u 50 -r 10 -t 1m --check 'p95<250ms'

Every run writes a results folder under reports/ (--results DIR to change):
Locust's CSV, exact per-interval histograms, run.json; `loadkit report` turns
it into HTML.

Each user keeps a connection for 10 messages, one recipient each, 5 KiB
bodies, no pause between messages. Subclass `SmtpUser` for other shapes:
every tunable is a class attribute (see loadkit/users.py).
"""

from locust import constant, task

import loadkit.plugin  # noqa: F401  (the results folder, --check, --probe)
from loadkit.users import SmtpUser


class MailSender(SmtpUser):
    wait_time = constant(0)
    messages_per_connection = 10
    recipients_per_message = 1
    payload_size = 5120

    @task
    def send_mail(self):
        self.send("send")
