"""The report in a real browser: headless Chromium opens it from disk, with no network.

Checks what a person would see: every chart has a drawing with a size (the
page's own script marks ``<body data-rendered="all">``), nothing is logged
to the console, a server reply carrying ``<script>`` is text on the page and
not an element, and a screenshot is not blank.

And how it reads at 1400 px and on a 375 px phone, measured in the page by
a script added to a copy of it: nothing wider than the screen outside a
container that scrolls, chart text at least 9 px tall as shown, no word of
a table cell broken across lines, and values on hover (SVG titles).
"""

from __future__ import annotations

import json
import re
import subprocess
from html import escape
from html.parser import HTMLParser

import pytest

from loadkit.report import build_report
from tests.unit.test_report_metrics import SCRIPT_REPLY, make_results

pytestmark = pytest.mark.peer("chromium")

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
        self.charts = 0
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "body":
            self.body = dict(attrs)
        elif tag == "script":
            self.scripts += 1
        elif tag == "img":
            self.images += 1
        elif tag == "figure" and dict(attrs).get("class") == "chart":
            self.charts += 1

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


def test_every_chart_is_drawn_no_console_message_and_server_markup_is_text(peer, report, tmp_path):
    result = chromium(peer, report, tmp_path, "--window-size=1280,1000", "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if CONSOLE_LINE.search(line)]
    assert console == []
    dom = DomReader()
    dom.feed(result.stdout)
    expected_charts = report.read_text(encoding="utf-8").count('<figure class="chart"')
    assert expected_charts >= 10  # the charts, with the baseline's reply codes
    assert dom.body.get("data-rendered") == "all"  # set by the page's script: it ran, and every chart has a size
    assert dom.body.get("data-charts") == str(expected_charts) == str(dom.charts)
    assert dom.images == 0  # the reply's <img> is text too
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


# Added to a copy of the report: measures the page as laid out, into the frame holder's <body data-layout="...">.
MEASURE = r"""
<script>
window.addEventListener("load", function () {
  var width = document.documentElement.clientWidth;
  function scrolls(element) {
    for (var p = element.parentElement; p; p = p.parentElement) {
      var overflow = getComputedStyle(p).overflowX;
      if ((overflow === "auto" || overflow === "scroll") && p.getBoundingClientRect().right <= width + 1) { return true; }
    }
    return false;
  }
  function name(element) {
    return element.tagName.toLowerCase() + (element.id ? "#" + element.id : "") + (element.className && element.className.baseVal === undefined ? "." + element.className : "");
  }
  var wide = [];
  document.querySelectorAll("body *").forEach(function (element) {
    var box = element.getBoundingClientRect();
    if (box.width > 0 && (box.right > width + 1 || box.left < -1) && !scrolls(element)) { wide.push(name(element)); }
  });
  var smallest = 1000, texts = 0, small = [];
  document.querySelectorAll("figure.chart svg text").forEach(function (text) {
    if (text.getBoundingClientRect().width === 0 || !text.textContent.trim()) { return; }
    var m = text.getScreenCTM(), size = parseFloat(getComputedStyle(text).fontSize) * Math.hypot(m.a, m.b);
    texts += 1;
    if (size < smallest) { smallest = size; }
    if (size < 9) { small.push(text.textContent + " " + size.toFixed(1)); }
  });
  var broken = [];
  document.querySelectorAll("td, th").forEach(function (cell) {
    if (cell.closest("pre") || cell.querySelector("pre")) { return; }
    var walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT), node;
    while ((node = walker.nextNode())) {
      var re = /[^\s\-\/,]+/g, match;
      while ((match = re.exec(node.data))) {
        var range = document.createRange();
        range.setStart(node, match.index);
        range.setEnd(node, match.index + match[0].length);
        var lines = new Set(Array.from(range.getClientRects()).filter(function (r) { return r.width > 0; }).map(function (r) { return Math.round(r.top); }));
        if (lines.size > 1) { broken.push(match[0]); }
      }
    }
  });
  var hovers = 0;
  document.querySelectorAll("figure.chart svg g.hover circle title").forEach(function () { hovers += 1; });
  (window.parent || window).document.body.setAttribute("data-layout", JSON.stringify(
    {width: width, wide: wide.slice(0, 20), texts: texts, smallest: smallest, small: small.slice(0, 20),
     broken: broken.slice(0, 20), hovers: hovers}));
});
</script>
"""


@pytest.fixture(scope="module")
def measured_report(tmp_path_factory):
    """A run as a demo leaves it, sink included, with long names and replies, plus the measuring script."""
    parent = tmp_path_factory.mktemp("layout")
    names = (("SMTP", "send-with-a-rather-long-name"), ("SMTP", "end-of-data-pipelined"))
    run = make_results(parent / "run", seconds=12, per_second=20, names=names)
    path = run.folder / "run.json"
    metadata = json.loads(path.read_text())
    metadata["sink"] = {"sessions": 40, "messages": run.total.ok, "recipients": run.total.ok, "bytes": 123456789, "timeouts": 0,
                        "replies": {"220": 40, "250": 3 * run.total.ok}, "faults": {}, "tls": {"sessions": 0, "failures": 0},
                        "auth": {"ok": 0, "failed": 0}, "store": {"stored": 0, "skipped": 0, "failed": 0}, "trace": None}  # fmt: skip
    metadata["worker_shares"] = {"vm_7b658aa690574354a6a31ac51c9baf11": 30, "vm_950f91e4bea04b168ebff8d70e747ba4": 10}
    path.write_text(json.dumps(metadata))
    page = build_report(run.folder).read_text(encoding="utf-8")
    return page.replace("</body>", MEASURE + "</body>")


def layout(peer, page: str, tmp_path, width: int) -> dict:
    """The page in a frame ``width`` px wide: a phone's screen (headless Chromium's window is 500 px at least)."""
    holder = tmp_path / f"frame-{width}.html"
    holder.write_text(
        f'<!DOCTYPE html><html><body style="margin:0"><iframe style="width:{width}px;height:900px;border:0" '
        f'srcdoc="{escape(page, quote=True)}"></iframe></body></html>', encoding="utf-8"
    )
    result = chromium(peer, holder, tmp_path, f"--window-size={width + 100},1000", "--virtual-time-budget=8000", "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    dom = DomReader()
    dom.feed(result.stdout)
    assert "data-layout" in dom.body, result.stdout[-2000:]
    return json.loads(dom.body["data-layout"])


@pytest.mark.parametrize("width", [1400, 375])
def test_the_page_fits_its_screen_with_readable_charts_and_whole_words(peer, measured_report, tmp_path, width):
    measured = layout(peer, measured_report, tmp_path, width)
    assert measured["width"] == width
    assert measured["wide"] == []  # wider than the screen only inside a container that scrolls
    assert measured["texts"] > 50
    assert measured["small"] == [] and measured["smallest"] >= 9  # chart text as shown, in CSS px
    assert measured["broken"] == []  # no word of a table cell split across lines
    assert measured["hovers"] > 50  # values on hover: SVG <title>s on the points
