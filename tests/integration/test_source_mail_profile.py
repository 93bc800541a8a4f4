"""`loadkit source --mail-profile` against a real `loadkit sink`: the mix of sizes, MIME kinds,
recipients and domains is sent, and both sides count the same messages and recipients."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.integration.peers import loadkit_sink

PROFILE = "size=mix:realistic mime=attachments:0.2,html:0.3,utf8:0.1 recipients=1:80,2:15,5:5 domains=example.com:60,*:40"


def test_a_mail_profile_is_sent_and_counted_on_both_sides(tmp_path):
    with loadkit_sink(tmp_path) as (url, read_stats):
        result = subprocess.run(
            [sys.executable, "-m", "loadkit", "source", "-s", "4", "-m", "300", "-d", "--mail-profile", PROFILE, url.removeprefix("smtp://")],
            capture_output=True, text=True, timeout=120, check=False,
        )
        stats = read_stats()
    assert result.returncode == 0, result.stderr[-2000:]
    sent = re.search(r"(\d+) messages \((\d+) delivered, 0 failed\), (\d+) recipients", result.stdout)
    assert sent, result.stdout
    messages, delivered, recipients = (int(n) for n in sent.groups())
    assert messages == delivered == stats["messages"] == 300
    assert recipients == stats["recipients"] > 300  # some messages went to 2 or 5 recipients
    assert stats["bytes"] > 300 * 5120  # the realistic mix: mean ~64 KiB, far above one fixed 5 KiB size


def test_a_bad_mail_profile_is_one_line_and_exit_2(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "loadkit", "source", "-m", "1", "--mail-profile", "size=mix:huge", "127.0.0.1:9"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "no size table 'huge'" in result.stderr and "Traceback" not in result.stderr
