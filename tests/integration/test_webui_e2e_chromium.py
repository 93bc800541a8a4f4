"""The Mail tab's end-to-end rows, in a real browser, for a run through a real Postfix.

Real peers: Postfix (a loadkit instance relaying to loadkit's sink), Locust's
web UI with `locustfiles/postfix_e2e.py`, and Chromium. While the run goes on
the tab counts what Postfix accepted and says the rest is counted at the end;
after Stop and the drain it shows accepted, delivered, lost and duplicated,
equal to e2e.json and to what the sink received, and the delivery p99 of e2e.json.

Postfix holds the mail (``defer_transports``) until a few seconds after the
results folder has its run.json: Locust's page asks for its stats once more
after Stop and then no more, so that one answer must wait for the drain.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from loadkit.instances import Postfix
from tests.integration.test_instance_cli import instance_root  # noqa: F401  (fixture)
from tests.integration.test_postfix_e2e import LOCUSTFILE, postfix_peer, release_held_mail  # noqa: F401  (fixture)
from tests.integration.test_webui_chromium import (  # noqa: F401  (chromium: fixture)
    chromium,
    count_of,
    locust_web_ui,
    wait_for_rows,
    wait_for_state,
)

pytestmark = [pytest.mark.peer("postfix"), pytest.mark.slow]


HELD_AFTER_RUN_JSON = 4.0  # seconds Postfix still holds the mail once run.json is written


def release_after_the_folder(postfix: Postfix, results, timeout: float = 180.0) -> None:
    """Let Postfix relay the held mail HELD_AFTER_RUN_JSON seconds after run.json is written."""
    deadline = time.monotonic() + timeout
    while not list(results.glob("*/run.json")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(HELD_AFTER_RUN_JSON)
    release_held_mail(postfix)


def e2e_row(rows, item: str) -> dict:
    (row,) = [row for row in rows if row["Section"] == "e2e" and row["What"] == item]
    return row


def test_the_end_to_end_rows_count_while_running_and_end_equal_to_e2e_json_and_the_sink(
        chromium, postfix_peer, instance_root):
    results = instance_root / "results"
    with Postfix(instance_root / "postfix", settings={"defer_transports": "smtp"}) as postfix:
        releaser = threading.Thread(target=release_after_the_folder, args=(postfix, results), daemon=True)
        releaser.start()
        with locust_web_ui(results, postfix.smtp_url, ["--e2e-postfix-state", str(postfix.state_dir),
                                                       "--e2e-drain-timeout", "60"], locustfile=str(LOCUSTFILE)) as url:
            page = chromium.new_context(viewport={"width": 1400, "height": 900}).new_page()
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(url)
            page.fill("input[name=userCount]", "4")
            page.fill("input[name=spawnRate]", "4")
            page.click("button[type=submit]")
            page.get_by_role("tab", name="Mail").click()
            running = wait_for_rows(page, lambda rows: (count_of(rows, "e2e", "accepted") or 0) > 0,
                                    "messages accepted while the run goes on")
            assert "counted at the end" in e2e_row(running, "accepted")["Detail"]
            assert count_of(running, "e2e", "delivered") is None  # not before the drain
            page.get_by_role("button", name="Stop").click()
            wait_for_state(url, "stopped")
            rows = wait_for_rows(page, lambda rows: count_of(rows, "e2e", "delivered") is not None,
                                 "delivered, once the queue is drained")
            page.close()
            assert errors == []
        (folder,) = [path for path in results.iterdir() if path.is_dir()]
        e2e = json.loads((folder / "e2e.json").read_text())
        assert postfix.queue_size() == 0
    sink = postfix.sink_stats()  # written when the sink stopped

    assert count_of(rows, "e2e", "accepted") == e2e["accepted"] >= count_of(running, "e2e", "accepted")
    assert count_of(rows, "e2e", "delivered") == e2e["delivered"] == e2e["accepted"] == sink["messages"]
    assert count_of(rows, "e2e", "lost") == e2e["lost"] == 0
    assert count_of(rows, "e2e", "duplicated") == e2e["duplicated"] == 0
    p99_us = int(e2e_row(rows, "delivery p99")["p99 µs"].replace(",", ""))
    assert p99_us == round(e2e["latency_ms"]["p99"] * 1000) > 0

