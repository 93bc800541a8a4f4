"""The report in a real browser: headless Chromium opens it from disk, with no network.

Checks what a person would see: every chart image decodes (the page's own
script marks ``<body data-rendered="all">`` once they have), nothing is
logged to the console, a server reply carrying ``<script>`` is text on the
page and not an element, and a screenshot is not blank.
"""

from __future__ import annotations

import re
import subprocess
from html.parser import HTMLParser

import pytest

from loadkit.report import build_report
from tests.unit.test_report_metrics import SCRIPT_REPLY, make_results

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
)  # fmt: skip
CONSOLE_LINE = re.compile(r":CONSOLE[(:]")


class DomReader(HTMLParser):
    """The body's attributes, the script elements and the text of a dumped DOM."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.body: dict[str, str] = {}
        self.scripts = 0
        self.images = 0
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "body":
            self.body = dict(attrs)
        elif tag == "script":
            self.scripts += 1
        elif tag == "img":
            self.images += 1

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    parent = tmp_path_factory.mktemp("chromium")
    baseline = make_results(parent / "baseline", seconds=8, per_second=15, events=False)
    current = make_results(parent / "current", seconds=8, per_second=15, latency_ms=12)
    return build_report(current.folder, baseline=baseline.folder)


def chromium(peer, report, tmp_path, *action: str) -> subprocess.CompletedProcess:
    command = [peer("chromium"), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *action, report.as_uri()]
    return subprocess.run(command, capture_output=True, text=True, timeout=90)


def test_every_image_decodes_no_console_message_and_server_markup_is_text(peer, report, tmp_path):
    result = chromium(peer, report, tmp_path, "--window-size=1280,1000", "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if CONSOLE_LINE.search(line)]
    assert console == []
    dom = DomReader()
    dom.feed(result.stdout)
    expected_images = report.read_text(encoding="utf-8").count("<img ")
    assert expected_images >= 10  # the charts, with the baseline's reply codes
    assert dom.body.get("data-rendered") == "all"  # set by the page's script: it ran, and every image decoded
    assert dom.body.get("data-images") == str(expected_images) == str(dom.images)
    assert dom.scripts == 1  # the page's own; the reply's <script> did not become an element
    assert SCRIPT_REPLY in "".join(dom.text)


def test_a_screenshot_of_the_report_is_not_blank(peer, report, tmp_path):
    from PIL import Image

    shot = tmp_path / "report.png"
    result = chromium(peer, report, tmp_path, "--window-size=1280,2400", f"--screenshot={shot}")
    assert result.returncode == 0, result.stderr[-2000:]
    with Image.open(shot) as image:
        assert image.size == (1280, 2400)
        colors = image.convert("RGB").resize((128, 240)).getcolors(maxcolors=1 << 16)
    # A page of text and charts has hundreds of colours; a blank or failed page has a handful.
    assert colors is None or len(colors) > 100
