"""Send mail at a rate (open model): messages arrive on a schedule, whatever the server's pace.

    locust -f locustfiles/smtp_open.py -H smtp://127.0.0.1:2525 --headless -u 50 -t 1m --rate 200
    locust -f locustfiles/smtp_open.py -H smtp://127.0.0.1:2525 --headless -u 50 --rate 50:30s,200:2m \\
        --check 'p99<500ms' --check 'service.p99<100ms' --check rate_reached --check 'dropped==0'

The 50 users are the session pool: each takes the next arrival when it is
free; --max-sessions caps them, --overload drop counts what finds none free.
The request's response time is the corrected latency (from the intended
time); `service` and `lag` are among its phases. Any SmtpUser locustfile
takes --rate the same way (smtp.py, postfix_e2e.py...); this one keeps one
connection per session, as a relay feeding a server would.
"""

from locust import constant, task

import loadkit.plugin  # noqa: F401  (the results folder, --check, --rate)
from loadkit.users import SmtpUser


class RateSender(SmtpUser):
    wait_time = constant(0)  # unused with --rate: the schedule decides
    messages_per_connection = 0
    payload_size = 5120

    @task
    def send_mail(self):
        self.send("send")
