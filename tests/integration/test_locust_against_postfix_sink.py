"""The Locust path counted by a server loadkit did not write: Postfix's smtp-sink.

smtp-sink's own counters (-c: sessions, messages) must match Locust's CSV
exactly, and its session count shows each user keeping its connection for
`messages_per_connection` messages (10 in both locustfiles).
"""

from __future__ import annotations

import math

import pytest

from tests.integration.peers import postfix_sink
from tests.integration.test_locust_headless import MESSAGES_PER_CONNECTION, aggregated, assert_connections_reused, run_locust

pytestmark = pytest.mark.peer("smtp-sink")


@pytest.mark.parametrize("locustfile, lmtp", [("smtp.py", False), ("lmtp.py", True)], ids=["smtp", "lmtp"])
def test_locustfile_counts_match_postfix_smtp_sink(tmp_path, locustfile, lmtp):
    with postfix_sink(lmtp=lmtp) as sink:
        scheme = "lmtp" if lmtp else "smtp"
        result = run_locust(locustfile, f"{scheme}://{sink.url}", tmp_path / scheme)
        assert result.returncode == 0, result.stderr[-2000:]
        row = aggregated(tmp_path / scheme)
        requests = int(row["Request Count"])
        counts = sink.stop(sessions=math.ceil(requests / MESSAGES_PER_CONNECTION))
    assert int(row["Failure Count"]) == 0
    assert requests == counts["messages"] > 0
    assert_connections_reused(counts["sessions"], counts["messages"])
