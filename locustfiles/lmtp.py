"""Deliver over LMTP (one reply per recipient after the dot, RFC 2033).

    locust -f locustfiles/lmtp.py -H lmtp://127.0.0.1:24
    locust -f locustfiles/lmtp.py -H lmtp+unix:///var/run/dovecot/lmtp --headless -u 20 -r 5 -t 1m

Each user keeps a connection for 10 messages of two recipients each. A
message counts as one request; a recipient refused after the dot makes
it a failure ("550 5.1.1 at END-OF-DATA") even when the others got it.
"""

from locust import constant, task

import loadkit.plugin  # noqa: F401  (the results folder, --check, --probe)
from loadkit.users import LmtpUser


class MailDeliverer(LmtpUser):
    wait_time = constant(0)
    messages_per_connection = 10
    recipients_per_message = 2
    payload_size = 5120

    @task
    def deliver_mail(self):
        self.send("deliver")
