"""The sink's DKIM outcomes in its trace log, counted by e2e among delivered messages and shown in the report."""

from __future__ import annotations

from loadkit.e2e import AcceptedMessages, delivery_summary
from loadkit.report._server_side import dkim_html


def test_outcomes_of_first_arrivals_of_accepted_messages_are_counted(tmp_path):
    log = tmp_path / "traces.log"
    log.write_text(
        "r1 s1 0 100.0 100.5 dkim=pass:a.test\n"
        "r1 s1 1 100.0 100.5 dkim=fail:a.test\n"
        "r1 s1 1 100.0 100.6 dkim=pass:a.test\n"   # a duplicate: not counted again
        "r1 s1 2 100.0 100.5 dkim=none\n"
        "r1 s1 3 100.0 100.5 dkim=pass:b.test\n"
        "r1 s1 9 100.0 100.5 dkim=pass:a.test\n"   # never accepted: unexpected, not counted
        "r1 s1 4 100.0 100.5\n"                    # a sink that did not verify
    )
    accepted = AcceptedMessages()
    for sequence in range(5):
        accepted.add_id("r1", "s1", sequence)
    summary = delivery_summary(accepted, log)
    assert (summary["delivered"], summary["duplicated"], summary["unexpected"]) == (5, 1, 1)
    assert summary["dkim"] == {"pass": {"a.test": 1, "b.test": 1}, "fail": {"a.test": 1}, "none": 1}


def test_without_outcomes_there_is_no_dkim_entry(tmp_path):
    log = tmp_path / "traces.log"
    log.write_text("r1 s1 0 100.0 100.5\n")
    accepted = AcceptedMessages()
    accepted.add_id("r1", "s1", 0)
    assert "dkim" not in delivery_summary(accepted, log)
    assert dkim_html({"delivered": 1}) == ""


def test_the_report_has_a_row_per_outcome_and_domain():
    page = dkim_html({"delivered": 4, "dkim": {"pass": {"a.test": 3}, "fail": {"a.test": 1}, "none": 0}})
    assert '<td>DKIM pass</td><td>a.test</td><td class="num">3</td><td class="num">75%</td>' in page
    assert '<td>DKIM fail</td><td>a.test</td><td class="num">1</td>' in page
    assert '<td>DKIM none</td><td></td><td class="num">0</td>' in page
