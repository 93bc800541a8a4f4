"""``loadkit check`` on end-to-end and server-side measures of a real run through Postfix to loadkit's sink.

Postfix is the peer: the thresholds read the e2e.json and probes.jsonl that
the run wrote (the queue probe samples once more after the drain). A closed
model at full speed outruns this Postfix and its queue grows; an open-model
rate below its capacity keeps the slope near 0. The same thresholds given to
``locust --check`` are checked after the drain, so they read the final e2e.json.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from loadkit.instances import Postfix
from tests.integration.test_instance_cli import instance_root  # noqa: F401  (fixture)
from tests.integration.test_postfix_e2e import only_folder, postfix_peer, run_e2e  # noqa: F401  (fixture)

pytestmark = [pytest.mark.peer("postfix"), pytest.mark.slow]

PASSING = ("e2e.lost==0", "e2e.p99<10s", "queue_growth<=5")
RATE = 50  # messages/s


def loadkit_check(folder, *expressions) -> subprocess.CompletedProcess:
    arguments = [arg for expression in expressions for arg in ("--check", expression)]
    return subprocess.run([sys.executable, "-m", "loadkit", "check", str(folder), *arguments,
                           "--json", str(folder / "e2e-verdicts.json")], capture_output=True, text=True, timeout=60)


def test_delivery_and_queue_thresholds_pass_and_an_impossible_one_exits_3(postfix_peer, instance_root):
    with Postfix(instance_root / "postfix") as postfix:
        # an open-model rate well below what the loopback Postfix relays: its queue must not grow
        on_the_command_line = [arg for expression in (*PASSING, "e2e.accepted>=1") for arg in ("--check", expression)]
        locust = run_e2e(postfix, instance_root / "results", "--probe", f"postfix={postfix.state_dir}",
                         "--rate", str(RATE), *on_the_command_line, seconds=8)  # exit 0: every check passed
        folder = only_folder(instance_root / "results")
    e2e = json.loads((folder / "e2e.json").read_text())
    assert e2e["accepted"] > RATE and e2e["lost"] == 0

    # --check on the locust command line ran after the drain: it read the e2e.json the run ended with
    assert "thresholds: 4 of 4 passed" in locust.stdout, locust.stdout[-3000:]
    at_end = {v["expression"]: v for v in json.loads((folder / "verdicts.json").read_text())["verdicts"]}
    assert {expression: v["status"] for expression, v in at_end.items()} == \
        dict.fromkeys((*PASSING, "e2e.accepted>=1"), "passed")
    assert at_end["e2e.accepted>=1"]["measured"] == e2e["accepted"]
    assert at_end["e2e.lost==0"]["source"] == "e2e.json" and at_end["queue_growth<=5"]["source"] == "probes.jsonl"

    passed = loadkit_check(folder, *PASSING)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    verdicts = {v["expression"]: v for v in json.loads((folder / "e2e-verdicts.json").read_text())["verdicts"]}
    assert {expression: verdicts[expression]["status"] for expression in PASSING} == dict.fromkeys(PASSING, "passed")
    assert verdicts["e2e.lost==0"]["measured"] == 0
    assert verdicts["e2e.p99<10s"]["source"] == "e2e.json" and 0 < verdicts["e2e.p99<10s"]["measured"] < 10_000
    assert verdicts["queue_growth<=5"]["source"] == "probes.jsonl"

    impossible = loadkit_check(folder, "e2e.p99<0.001ms")
    assert impossible.returncode == 3, impossible.stdout + impossible.stderr
    assert "FAILED  e2e.p99<0.001ms" in impossible.stdout
