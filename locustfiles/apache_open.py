"""Load a web server at a rate (open model): FastHttpUser with loadkit's session pool.

    loadkit target apache up
    locust -f locustfiles/apache_open.py -H http://127.0.0.1:PORT --headless -u 50 -t 1m --rate 500

The recipe for any HTTP user: mix in `OpenModelSession` before the Locust
user class, call `join_open_model()` at the end of on_start and
`leave_open_model()` in on_stop. The users then take arrivals from the
process's schedule instead of looping on wait_time, and offered, sent and
dropped are counted per second like the mail users'. Locust's HTTP client
times the request itself, so its response time is the service time: add
``self.intended`` (the arrival's intended wall-clock time) to your own
measures when you need the corrected latency.
"""

from locust import FastHttpUser, constant, task

import loadkit.plugin  # noqa: F401  (the results folder, --check, --rate)
from loadkit.open_model_locust import OpenModelSession


class OpenWebUser(OpenModelSession, FastHttpUser):
    wait_time = constant(0)  # unused with --rate: the schedule decides

    def on_start(self):
        self.join_open_model()

    def on_stop(self):
        self.leave_open_model()

    @task
    def small_file(self):
        self.client.get("/1k.bin")
