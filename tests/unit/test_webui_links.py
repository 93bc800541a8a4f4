"""The link bar and Download Data links on Locust's own page, with and without ``--web-base-path``.

Locust's real web UI app, driven by Flask's test client in a process of its
own (importing Locust monkey-patches the process). The links are relative, as
Locust's own asset links are, so they also work behind a proxy that serves
Locust under a path of its own; Flask sends ``/base`` on to ``/base/``, the
one address where they resolve, and each must reach its route.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from urllib.parse import urljoin

import pytest

LOCUSTS_PAGE = r"""
import json, sys
base_path, typed = sys.argv[1] or None, sys.argv[2]
sys.argv = ["locust"]  # Locust's page parses the command line for its form
from locust import User
from locust.argument_parser import parse_options
from locust.env import Environment
from loadkit.metrics.plugin import Results
from loadkit.webui._app import MailConsole

class Idle(User):
    abstract = False

environment = Environment(user_classes=[Idle], parsed_options=parse_options(["--web-base-path", base_path] if base_path else []))
environment.create_local_runner()
web_ui = environment.create_web_ui("127.0.0.1", 0, web_base_path=base_path)
web_ui.greenlet.kill(block=True)  # never listens: the test client calls the app directly
MailConsole(environment, Results(), web_ui).install()  # no test has run: no folder
client = web_ui.app.test_client()
page = client.get(typed, follow_redirects=True)
print(json.dumps({"status": page.status_code, "path": page.request.path, "html": page.get_data(as_text=True),
                  "downloads": [link["href"] for link in web_ui.template_args["extended_csv_files"]]}))
for line in sys.stdin:
    response = client.get(line.strip())
    print(json.dumps({"status": response.status_code, "body": response.get_data(as_text=True)[:20000]}))
"""


@pytest.mark.parametrize("base_path, typed, page", [
    (None, "/", "/"),
    ("/locust", "/locust", "/locust/"),
    ("/team/locust", "/team/locust/", "/team/locust/"),
])
def test_each_link_on_locusts_page_reaches_loadkits_route(base_path, typed, page):
    def ask(addresses=()):
        result = subprocess.run([sys.executable, "-c", LOCUSTS_PAGE, base_path or "", typed], input="\n".join(addresses),
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr[-3000:]
        return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]

    (shown,) = ask()
    assert shown["status"] == 200 and shown["path"] == page
    bar = re.search(r'<div id="loadkit-links".*?</div>', shown["html"]).group(0)
    links = re.findall(r'href="([^"]+)"', bar)
    assert links == shown["downloads"]  # Download Data's: the same

    reached = [urljoin(page, link) for link in links]
    prefix = page + "loadkit"
    assert reached == [f"{prefix}/mail", f"{prefix}/report", f"{prefix}/results.zip"]
    _page, console, archive = ask([reached[0], reached[2]])
    assert console["status"] == 200 and 'id="report"' in console["body"]  # the mail console page
    assert "no results folder yet" in archive["body"]
