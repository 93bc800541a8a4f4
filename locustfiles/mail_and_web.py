"""Mail and web users in one run: an SMTP server and a web server loaded together.

    LOADKIT_WEB_HOST=http://127.0.0.1:8080 locust -f locustfiles/mail_and_web.py -H smtp://127.0.0.1:2525

Locust has one host (-H), and it gives it to every user class: here it is the
mail target. The web users take theirs from ``LOADKIT_WEB_HOST`` (or from a
subclass's `web_host`), so a run can load, say, Postfix and the Apache in
front of the same mailbox web app at once, and see both in one results folder
and one report. Half the users send mail, half fetch pages (`weight`).
"""

import os
import sys

from apache import WebUser  # locustfiles/apache.py: Locust puts a locustfile's folder on sys.path
from locust import constant, events, task

import loadkit.plugin  # noqa: F401  (the results folder, --check, --probe)
from loadkit.users import SmtpUser

WEB_HOST_VARIABLE = "LOADKIT_WEB_HOST"


class MailUser(SmtpUser):
    weight = 1
    wait_time = constant(0)
    messages_per_connection = 10
    recipients_per_message = 1
    payload_size = 5120

    @task
    def send_mail(self):
        self.send("send")


class MixedWebUser(WebUser):
    weight = 1
    keep_alive = True
    web_host: str | None = None
    """The web server's base URL; default: the LOADKIT_WEB_HOST environment variable."""

    def __init__(self, environment):
        self.host = web_host_of(type(self))  # -H is the mail target's: set the web one per user
        super().__init__(environment)


def web_host_of(user_class) -> str | None:
    return user_class.web_host or os.environ.get(WEB_HOST_VARIABLE) or None


@events.init.add_listener
def _check_web_host(environment, **_kwargs):
    """Fail before the run, in one line, when the web users have nowhere to go."""
    for user_class in environment.user_classes:
        if issubclass(user_class, MixedWebUser):
            host = web_host_of(user_class)
            if not host or not host.startswith(("http://", "https://")):
                print(f"loadkit: {user_class.__name__} needs a web server: set {WEB_HOST_VARIABLE}=http://host:port "
                      f"(got {host!r}); -H is the mail target", file=sys.stderr)
                sys.exit(2)
