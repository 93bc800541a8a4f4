"""Server-side samplers: what the target went through while the load ran.

Each probe's `sample()` returns one row of numbers (or raises `ProbeError`);
a `ProbeSampler` calls every probe once a second in a greenlet and appends
the rows to ``probes.jsonl`` in the results folder::

    {"time": 1764115943.0, "probe": "postfix", "active": 12, "deferred": 0, "incoming": 3, ...}
    {"time": 1764115943.0, "probe": "apache", "busy_workers": 8, "idle_workers": 42, "requests_per_s": 950.0, ...}
    {"time": 1764115943.0, "probe": "host", "cpu_percent": 63.5, "memory_percent": 41.2, ...}

    postfix     queue sizes from ``postqueue -j`` of a loadkit Postfix instance
    apache      mod_status ``?auto``: workers, requests/s, bytes/s, scoreboard
    host        psutil: this machine's CPU and memory, this process's CPU, and
                the target's processes when a postfix probe names them

At the end, `postfix_log_summary` reads the instance's log into
``postfix_log.json``: status counts (sent, bounced, deferred, ...), per
sender too, and the ``delays=a/b/c/d`` of every delivery as histograms.

On the locust command line (see `plugin`, registered by `loadkit.plugin`):
``--probe postfix[=STATE_DIR]``, ``--probe apache=http://127.0.0.1:8080/server-status?auto``,
``--probe host``.
"""

from loadkit.probes._apache import ApacheStatusProbe
from loadkit.probes._base import ProbeError, parse_probe_spec
from loadkit.probes._host import HostProbe
from loadkit.probes._postfix import PostfixQueueProbe
from loadkit.probes._postfix_log import POSTFIX_LOG_FILE, postfix_log_summary, write_postfix_log
from loadkit.probes._sampler import PROBES_FILE, ProbeSampler

__all__ = [
    "POSTFIX_LOG_FILE",
    "PROBES_FILE",
    "ApacheStatusProbe",
    "HostProbe",
    "PostfixQueueProbe",
    "ProbeError",
    "ProbeSampler",
    "parse_probe_spec",
    "postfix_log_summary",
    "write_postfix_log",
]
