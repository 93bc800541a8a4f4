"""Locust's web UI as a mail console (see `loadkit.webui.plugin`).

    plugin      registration: only where a web UI runs
    _app        routes, the report link, the start form's checks
    _console    the Mail tab's state and table rows
    _live       what the run has recorded so far, read from its results folder
    _workers    each worker's share, rate and p99 on a master
    _sink       the sink's counters over its control port
    _swarm      the host and thresholds of the start form, checked before a swarm
    _page       the console page (inline SVG charts, plain JS)
"""

from loadkit.webui._sink import SinkControlError
from loadkit.webui.plugin import register_webui

__all__ = ["SinkControlError", "register_webui"]
