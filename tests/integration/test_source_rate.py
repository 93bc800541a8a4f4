"""`loadkit source --rate`: the smtp-source-style command holds an open-model rate, against `loadkit sink`."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.integration.peers import loadkit_sink


def source(url: str, *options: str) -> subprocess.CompletedProcess:
    target = url.removeprefix("smtp://")
    return subprocess.run([sys.executable, "-m", "loadkit", "source", *options, target],
                          capture_output=True, text=True, timeout=120, check=False)


def test_source_holds_its_rate_and_sends_exactly_m(tmp_path):
    with loadkit_sink(tmp_path, "--delay", "data:2ms") as (url, read_stats):
        result = source(url, "-s", "10", "-d", "-m", "3000", "--rate", "200")
        sink = read_stats()
    assert result.returncode == 0, result.stderr[-2000:]
    assert sink["messages"] == 3000
    _offered, _offered_rate, sent, sent_rate, dropped = re.search(
        r"rate: (\d+) offered \(([\d.]+)/s\), (\d+) sent \(([\d.]+)/s\), (\d+) dropped", result.stdout).groups()
    assert int(dropped) == 0 and int(sent) >= 3000
    assert abs(float(sent_rate) - 200) <= 0.02 * 200, result.stdout


def test_source_drop_mode_counts_what_two_slow_sessions_cannot_take(tmp_path):
    # 2 sessions, 100 ms each: 20/s at most, 50/s offered
    with loadkit_sink(tmp_path, "--delay", "data:100ms") as (url, read_stats):
        result = source(url, "-s", "2", "-d", "-m", "60", "--rate", "50", "--overload", "drop")
        sink = read_stats()
    assert result.returncode == 0, result.stderr[-2000:]
    assert sink["messages"] == 60
    offered, sent, dropped = (int(n) for n in re.search(
        r"rate: (\d+) offered .*?, (\d+) sent .*?, (\d+) dropped", result.stdout).groups())
    assert offered == sent + dropped and dropped >= offered * 0.4, result.stdout


def test_source_rejects_a_rate_of_zero_in_one_line():
    result = subprocess.run([sys.executable, "-m", "loadkit", "source", "--rate", "0", "127.0.0.1:1"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2 and "--rate 0" in result.stderr and "Traceback" not in result.stderr
