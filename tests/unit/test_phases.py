"""One phase order: loadkit.phases, and the report's rows of a real Locust run in that order.

The locustfile fires one message and its phase_stats rows (type
``SMTP-phase``) in a shuffled order; Locust writes its CSV sorted by name,
and the report must show the phases in protocol order all the same.
"""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
from pathlib import Path

from loadkit.phases import PHASE_SUFFIX, PHASES, in_phase_order, is_phase_type, phase_position
from loadkit.report import load_run

# a plain Locust run: -t counted from its start, not from before it (see that file)
FRESH_CLOCK = Path(__file__).resolve().parents[1] / "integration" / "fresh_clock_locustfile.py"


def test_the_order_is_the_protocol_order():
    assert PHASES == ("connect", "tls", "banner", "helo", "starttls", "auth",
                      "rset", "envelope", "mail", "rcpt", "data", "end-of-data", "quit")
    assert len(set(PHASES)) == len(PHASES)


def test_names_are_sorted_by_phase_and_other_names_follow_by_name():
    shuffled = [*PHASES, "zeta", "alpha"]
    random.Random(7).shuffle(shuffled)
    assert in_phase_order(shuffled) == [*PHASES, "alpha", "zeta"]
    assert phase_position("TLS") == PHASES.index("tls")
    assert phase_position("body") == len(PHASES)


def test_phase_types():
    assert is_phase_type("SMTP" + PHASE_SUFFIX) and is_phase_type("LMTP-phase")
    assert not is_phase_type("SMTP") and not is_phase_type("phase")


LOCUSTFILE = textwrap.dedent(
    """
    import random
    from locust import User, constant, task

    PHASES = {phases!r}

    class PhaseStatsUser(User):
        wait_time = constant(600)

        @task
        def send(self):
            fire = self.environment.events.request.fire
            fire(request_type="SMTP", name="send", response_time=5.0, response_length=10, exception=None, context={{}})
            shuffled = list(PHASES)
            random.Random(3).shuffle(shuffled)
            for phase in shuffled:
                fire(request_type="SMTP-phase", name=phase, response_time=1.0, response_length=0,
                     exception=None, context={{}})
    """
)


def test_phase_stats_rows_of_a_locust_run_are_reported_in_protocol_order(tmp_path):
    (tmp_path / "locustfile.py").write_text(LOCUSTFILE.format(phases=PHASES))
    command = [sys.executable, "-m", "locust", "-f", f"locustfile.py,{FRESH_CLOCK}", "--headless", "-u", "1", "-r", "1", "-t", "2s",
               "--csv", "results/locust", "--json-file", "results/stats", "--only-summary"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]

    csv_rows = (tmp_path / "results" / "locust_stats.csv").read_text().splitlines()
    locust_order = [line.split(",")[1] for line in csv_rows[1:] if line.startswith("SMTP-phase,")]
    assert locust_order == sorted(PHASES)  # Locust sorts by name: what the report must undo

    for path, source in ((tmp_path / "results", "locust_stats.csv"), (tmp_path / "results" / "stats.json", "stats.json")):
        run = load_run(path)
        assert run.source == source
        # phase rows are phase times, not requests: they go to the phases table, in protocol order
        assert [(row.type, row.name) for row in run.requests] == [("SMTP", "send")], source
        assert [(row.type, row.name) for row in run.phases] == [("SMTP-phase", phase) for phase in PHASES], source
        assert all(row.count == 1 for row in run.requests + run.phases), source
