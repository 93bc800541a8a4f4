"""loadkit's one entry into Locust: ``import loadkit.plugin`` in a locustfile.

Importing it does two things and nothing else:

- declares loadkit's options on the ``locust`` command line (Locust's
  `init_command_line_parser` event): ``--results``, ``--check``, the
  ``--e2e-*`` options, ``--probe`` and the open model's ``--rate``,
  ``--arrival``, ``--arrival-seed``, ``--max-sessions``, ``--overload``,
  ``--message-size``, ``--messages-per-connection`` and ``--sink-control``;
- calls `register(events)` for Locust's global events.

`register` adds loadkit's listeners, each package's through its own
``register_*(events, collaborators)`` function, in this order:

1. results and metrics (`loadkit.metrics.plugin.register_results`): the
   results folder of each test exists before the others' test_start
   listeners run; at test_stop the run's stop time is taken and a master
   waits for its workers' final reports, before anyone else counts.
2. end-to-end delivery (`loadkit.e2e.plugin.register_e2e`, given the
   results): drains and counts into the folder once the reports are in.
3. probes (`loadkit.probes.plugin.register_probes`, given the results):
   their test listeners are added at init, after everything registered at
   import (the locustfile's own listeners too), so they sample the whole
   test, end-to-end drain included, and stop last.
4. open model (`loadkit.open_model_locust.register_open_model`): with
   ``--rate``, each process's session pool and the master's rate split.
5. run options (`loadkit.options.register_run_options`): ``--message-size``
   and ``--messages-per-connection`` onto the mail users at each test start.
6. web UI (`loadkit.webui.register_webui`, given the results): the Mail tab,
   the report link and the start form's checks, only where a web UI runs.
7. checks (`loadkit.check.register_checks`, given the results): their
   test_stop listener is added at init after the end-to-end drain's and the
   probes', so ``--check`` reads e2e.json and the queue's last sample; the
   verdicts are written once the folder is.
8. the last test_stop listener (`loadkit.metrics.plugin.register_last`):
   tells the results that every listener above has run, so the web UI's
   last answer after Stop waits for the whole folder, e2e.json included.

Before them, an init listener refreshes gevent's cached clock (see
`loadkit.loop_clock`), so ``--run-time`` is counted from now.

`loadkit.users` imports this module, so locustfiles on loadkit's users get
it either way; a locustfile without them (a web one) imports it itself.
Registering the same events twice is harmless: the second call does nothing.
"""

from __future__ import annotations

import weakref

from locust import events

from loadkit import check, open_model_locust
from loadkit import options as run_options
from loadkit.e2e import plugin as e2e_plugin
from loadkit.loop_clock import refresh_loop_clock
from loadkit.metrics import plugin as metrics_plugin
from loadkit.probes import plugin as probes_plugin
from loadkit.webui import plugin as webui_plugin

__all__ = ["register"]

_registered: weakref.WeakSet = weakref.WeakSet()


@events.init_command_line_parser.add_listener
def _add_options(parser, **_kwargs):
    metrics_plugin.add_options(parser)
    e2e_plugin.add_options(parser)
    probes_plugin.add_options(parser)
    open_model_locust.add_options(parser)
    run_options.add_options(parser)


def register(events_) -> None:
    """Add loadkit's listeners to Locust's `events_` in the order above, once."""
    if events_ in _registered:
        return
    _registered.add(events_)
    # Locust sets `--run-time`'s timer right after its init event, from a clock stale by its start-up
    # (a 3 s run on a busy machine that took 3 s to start stopped after 0.2 s)
    events_.init.add_listener(refresh_loop_clock)
    results = metrics_plugin.register_results(events_)
    e2e_plugin.register_e2e(events_, results)
    probes_plugin.register_probes(events_, results)
    open_model_locust.register_open_model(events_, results)
    run_options.register_run_options(events_)
    webui_plugin.register_webui(events_, results)
    check.register_checks(events_, results)
    metrics_plugin.register_last(events_, results)


register(events)
