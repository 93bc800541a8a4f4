"""End-to-end delivery through Postfix: accepted, delivered, lost, duplicated, and how long it took.

    loadkit target postfix up                      # Postfix on loopback, relaying to a loadkit sink
    locust -f locustfiles/postfix_e2e.py -H smtp://127.0.0.1:PORT --headless -u 10 -r 10 -t 30s
    loadkit report reports/<run>                   # the "End-to-end delivery" section

Users send through Postfix; Postfix relays to the sink, which logs each
message's X-Loadkit-Trace as it arrives. When the test stops, Postfix's queue
is drained (at most --e2e-drain-timeout seconds) and e2e.json written into the
results folder. The instance is the one in reports/instances/postfix unless
--e2e-postfix-state DIR (or $LOADKIT_POSTFIX_STATE) names another; a relay that
delivers to a sink of your own: --e2e-trace-log PATH (its --trace-log).
"""

from locust import constant, task

import loadkit.plugin  # noqa: F401  (the results folder, --e2e-*, --probe)
from loadkit.users import TracedSmtpUser


class PostfixSender(TracedSmtpUser):
    wait_time = constant(0)
    messages_per_connection = 10
    recipients_per_message = 1
    payload_size = 5120

    @task
    def send_mail(self):
        self.send("send")
