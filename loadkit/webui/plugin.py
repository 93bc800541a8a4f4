"""Locust's web UI as a mail console: the Mail tab, its page, the report link, the start form's checks.

Registered by `loadkit.plugin` (`add_options`, `register_webui(events, results)`).
At init it does something only where a web UI exists (a master or a local
runner started without ``--headless``); on workers and headless runs it adds
nothing, and it never listens to ``events.request``: every number is read
from what the run's recorder has already merged, when the UI asks.

What it adds to the web UI (Locust's own extension points):

    Mail tab             ``extended_tabs`` / ``extended_tables``, its rows in
                         ``extended_stats`` of ``/stats/requests`` (see `_console`)
    /loadkit/mail        the console page: the same numbers plus charts of the
                         phases over time with the ``--check`` thresholds (`_page`)
    /loadkit/mail.json   what that page polls
    /loadkit/report      the run's report.html: built into the results folder
                         at Stop; while a test runs, built from what is recorded so far
    /loadkit/results.zip the results folder as a download
    /swarm               refused before Locust starts anything for a host the mail
                         users cannot use or a threshold that does not parse (`_swarm`)

``--sink-control HOST:PORT`` (declared in `loadkit.options`, shown in the
start form) names the control port of a ``loadkit sink --control`` whose
counters the tab shows.
"""

from __future__ import annotations

import weakref

_registered: weakref.WeakSet = weakref.WeakSet()


def register_webui(events, results) -> None:
    """Add the web UI's init listener to Locust's `events` (once); `results` is the run's `Results`."""
    if events in _registered:
        return
    _registered.add(events)

    def on_init(environment, runner=None, web_ui=None, **_kwargs):
        from locust.runners import WorkerRunner

        if web_ui is None or isinstance(runner, WorkerRunner):
            return
        from loadkit.webui._app import MailConsole

        MailConsole(environment, results, web_ui).install()

    events.init.add_listener(on_init)


