"""``loadkit options``: loadkit's options of the ``locust`` command line, with their help.

Locust's own ``--help`` lists a plugin's options only once a locustfile that
imports it is loaded; this lists them without one. Each also goes in
locust.conf (``rate = 200``) or ``[tool.locust]``.
"""

from __future__ import annotations

import argparse


def add_arguments(parser) -> None:
    pass


class _Collect:
    """Stands in for Locust's parser: records each add_argument call."""

    def __init__(self):
        self.options: list[tuple[str, str]] = []

    def add_argument(self, *names, help="", metavar=None, choices=None, **_kwargs):
        shown = ", ".join(names)
        if choices:
            shown += " {" + ",".join(choices) + "}"
        elif metavar:
            shown += f" {metavar}"
        self.options.append((shown, help.removeprefix("loadkit: ")))

    def add_argument_group(self, *_args, **_kwargs):
        return self


def loadkit_options() -> list[tuple[str, str]]:
    from loadkit import open_model_locust
    from loadkit.e2e import plugin as e2e_plugin
    from loadkit.metrics import plugin as metrics_plugin
    from loadkit.probes import plugin as probes_plugin

    collect = _Collect()
    for module in (metrics_plugin, e2e_plugin, probes_plugin, open_model_locust):
        module.add_options(collect)
    return collect.options


def run(args: argparse.Namespace) -> int:
    print("loadkit's options of the locust command line (also in locust.conf):\n")
    for shown, help_text in loadkit_options():
        print(f"  {shown}\n      {help_text.replace('%%', '%')}")
    return 0
