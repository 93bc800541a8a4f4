"""The link bar and Download Data links on Locust's own page, with and without ``--web-base-path``.

Locust's real web UI app, in-process (Flask's test client). The links are
relative, as Locust's own asset links are, so they also work behind a proxy
that serves Locust under a path of its own; Flask sends ``/base`` on to
``/base/``, the one address where they resolve, and each must reach its route.
"""

from __future__ import annotations

import re
import sys
from urllib.parse import urljoin

import pytest


def web_app(base_path):
    from locust import User
    from locust.argument_parser import parse_options
    from locust.env import Environment

    from loadkit.metrics.plugin import Results
    from loadkit.webui._app import MailConsole

    class Idle(User):
        abstract = False

    options = parse_options(["--web-base-path", base_path] if base_path else [])
    environment = Environment(user_classes=[Idle], parsed_options=options)
    environment.create_local_runner()
    web_ui = environment.create_web_ui("127.0.0.1", 0, web_base_path=base_path)
    web_ui.greenlet.kill(block=True)  # never listens: the test client calls the app directly
    MailConsole(environment, Results(), web_ui).install()  # no test has run: no folder
    return web_ui.template_args, web_ui.app.test_client()


@pytest.mark.parametrize("base_path, typed, page", [
    (None, "/", "/"),
    ("/locust", "/locust", "/locust/"),
    ("/team/locust", "/team/locust/", "/team/locust/"),
])
def test_each_link_on_locusts_page_reaches_loadkits_route(base_path, typed, page, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["locust"])  # Locust's page parses the command line for its form
    template_args, client = web_app(base_path)
    response = client.get(typed, follow_redirects=True)
    assert response.status_code == 200 and response.request.path == page
    bar = re.search(r'<div id="loadkit-links".*?</div>', response.get_data(as_text=True)).group(0)
    links = re.findall(r'href="([^"]+)"', bar)
    assert links == [link["href"] for link in template_args["extended_csv_files"]]  # Download Data's: the same

    reached = [urljoin(page, link) for link in links]
    prefix = page + "loadkit"
    assert reached == [f"{prefix}/mail", f"{prefix}/report", f"{prefix}/results.zip"]
    assert b'id="report"' in client.get(reached[0]).data  # the mail console page
    assert b"no results folder yet" in client.get(reached[2]).data
