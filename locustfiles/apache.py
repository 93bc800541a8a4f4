"""Load a web server (Apache first): static files of several sizes and a dynamic page.

    locust -f locustfiles/apache.py -H http://127.0.0.1:8080
    locust -f locustfiles/apache.py -H http://127.0.0.1:8080 --headless -u 50 -r 50 -t 1m --check 'p95<250ms'
    locust -f locustfiles/apache.py -H http://127.0.0.1:8080 KeepAliveWebUser      # one class only

`loadkit target apache up` starts an Apache that serves exactly these paths.
Every run writes a results folder under reports/ (--results DIR to change),
as the mail locustfiles do: a failed request's HTTP status (404, 503) stands
where a mail run has its reply code.

Two user classes, equally many of each unless named on the command line:
`KeepAliveWebUser` reuses its connection (FastHttpUser's default),
`NewConnectionWebUser` sends ``Connection: close`` and connects for every
request. Each request is named by its path, so the statistics group by file.
Tunables are class attributes: subclass `WebUser` to change the paths (the
task weights favour small files, as real traffic does).
"""

from itertools import count

from locust import FastHttpUser, constant, events, task

import loadkit.plugin  # noqa: F401  (the results folder, --check, --probe)

# Users finish the request they are in when a run stops, so the server's count
# (access log, mod_status) equals Locust's; loopback requests take milliseconds.
STOP_TIMEOUT = 10.0


class WebUser(FastHttpUser):
    """GETs of static files by weight, and a dynamic page; no pause between requests."""

    abstract = True
    wait_time = constant(0)
    keep_alive: bool = True
    """False: send ``Connection: close``, so every request opens a new connection."""
    small_file: str = "/1k.bin"
    medium_file: str = "/10k.bin"
    large_file: str = "/100k.bin"
    huge_file: str = "/1m.bin"
    dynamic_page: str = "/cgi-bin/hello"
    """Requested with a query string that changes every time; named by its path alone."""

    def __init__(self, environment):
        if not self.keep_alive:
            self.default_headers = {**(self.default_headers or {}), "Connection": "close"}
        super().__init__(environment)
        self._numbers = count(1)

    def fetch(self, path: str) -> None:
        self.client.get(path, name=path)

    @task(8)
    def get_small_file(self):
        self.fetch(self.small_file)

    @task(4)
    def get_medium_file(self):
        self.fetch(self.medium_file)

    @task(2)
    def get_large_file(self):
        self.fetch(self.large_file)

    @task(1)
    def get_huge_file(self):
        self.fetch(self.huge_file)

    @task(2)
    def get_dynamic_page(self):
        self.client.get(f"{self.dynamic_page}?n={next(self._numbers)}", name=self.dynamic_page)


class KeepAliveWebUser(WebUser):
    keep_alive = True


class NewConnectionWebUser(WebUser):
    keep_alive = False


@events.init.add_listener
def _let_requests_finish(environment, **_kwargs):
    if not environment.stop_timeout:
        environment.stop_timeout = STOP_TIMEOUT
