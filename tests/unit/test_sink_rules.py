"""Recipient rules at the protocol level: the table file, the replies, the counts per rule."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from loadkit.errors import LoadkitError
from loadkit.sink import SinkProfile, SinkSettings, SinkStats
from loadkit.sink._rules import RecipientRules, RulesError

TABLE = """\
# the receivers of a test run
tempfail@*     defer
permfail@*     bounce
*@grey.test    greylist 10s
*@busy.test    ratelimit 3
soft@*         defer 450
"""


def session(rules: RecipientRules, lmtp=False, peer=("127.0.0.1", 40000)):
    stats = SinkStats()
    stats.rules = rules
    profile = SinkProfile(lmtp=lmtp, rules=rules)
    return profile.new_session(stats, peer=peer), stats


def replies_of(replies: bytes) -> list[bytes]:
    """Whole replies: a multi-line one (``451-...``) joined with its last line."""
    out, current = [], []
    for line in replies.split(b"\r\n"):
        if not line:
            continue
        current.append(line)
        if line[3:4] != b"-":
            out.append(b"\r\n".join(current))
            current = []
    assert not current, "a multi-line reply without its last line"
    return out


def transaction(*recipients: str, sender: str = "a@b.test") -> bytes:
    rcpts = b"".join(f"RCPT TO:<{r}>\r\n".encode() for r in recipients)
    return f"MAIL FROM:<{sender}>\r\n".encode() + rcpts + b"DATA\r\nhello\r\n.\r\n"


def test_defer_and_bounce_answer_multi_line_and_only_the_rest_is_delivered():
    rules = RecipientRules.from_text(TABLE)
    smtp, stats = session(rules)
    replies = replies_of(smtp.feed(b"EHLO c\r\n" + transaction("tempfail@x.test", "permfail@y.test", "ok@z.test")))
    # EHLO, MAIL, three RCPTs, DATA, end of data
    rcpt_replies = replies[2:5]
    assert rcpt_replies[0].startswith(b"451-4.3.0 ") and rcpt_replies[0].count(b"\r\n") == 1
    assert rcpt_replies[0].split(b"\r\n")[-1].startswith(b"451 4.3.0 ")
    assert rcpt_replies[1].startswith(b"550-5.1.1 ") and rcpt_replies[1].count(b"\r\n") == 2
    assert rcpt_replies[1].split(b"\r\n")[-1].startswith(b"550 5.1.1 ")
    assert rcpt_replies[2].startswith(b"250 ")
    assert replies[-1].startswith(b"250 ")
    assert stats.messages == 1 and stats.recipients == 1
    assert stats.as_dict()["rules"] == {
        "tempfail@* defer": {"refused": 1, "passed": 0},
        "permfail@* bounce": {"refused": 1, "passed": 0},
        "*@grey.test greylist 10s": {"refused": 0, "passed": 0},
        "*@busy.test ratelimit 3": {"refused": 0, "passed": 0},
        "soft@* defer 450": {"refused": 0, "passed": 0},
    }


def test_a_message_whose_recipients_are_all_refused_is_not_delivered():
    smtp, stats = session(RecipientRules.from_text(TABLE))
    replies = replies_of(smtp.feed(b"HELO c\r\n" + transaction("permfail@x.test")))
    assert replies[3].startswith(b"554 5.5.1 ")  # DATA without a recipient (the text then reads as commands)
    assert stats.messages == 0


def test_matching_ignores_case_and_the_first_rule_wins():
    rules = RecipientRules.from_text("PermFail@* bounce\n*@*.test defer\n")
    smtp, stats = session(rules)
    replies = replies_of(smtp.feed(b"HELO c\r\n" + transaction("PERMFAIL@X.TEST", "other@x.test", "other@x.org")))
    assert [r[:3] for r in replies[2:5]] == [b"550", b"451", b"250"]
    assert rules.as_dict() == {"PermFail@* bounce": {"refused": 1, "passed": 0},
                               "*@*.test defer": {"refused": 1, "passed": 0}}


def test_a_code_given_is_used():
    smtp, _ = session(RecipientRules.from_text("soft@* defer 450\nhard@* bounce 554\n"))
    replies = replies_of(smtp.feed(b"HELO c\r\n" + transaction("soft@x.test", "hard@x.test")))
    assert [r[:3] for r in replies[2:4]] == [b"450", b"554"]


def test_greylist_rule_keys_on_client_sender_recipient_and_waits_its_delay():
    rules = RecipientRules.from_text("*@grey.test greylist 10s\n")
    rule = rules.rules[0]
    assert rules.answer("1.2.3.4", b"s@x", b"r@grey.test", now=100.0)[:9] == b"450-4.7.1"
    assert rules.answer("1.2.3.4", b"s@x", b"r@grey.test", now=105.0) is not None  # too early
    assert rules.answer("1.2.3.4", b"s@x", b"r@grey.test", now=110.0) is None
    assert rules.answer("5.6.7.8", b"s@x", b"r@grey.test", now=110.0) is not None  # another client
    assert rules.answer("1.2.3.4", b"s@x", b"r@other.test", now=110.0) is None  # no rule: accepted, not counted
    assert (rule.refused, rule.passed) == (3, 1)


def test_greylist_in_a_session_then_a_retry_passes():
    smtp, stats = session(RecipientRules.from_text("*@grey.test greylist\n"))
    first = replies_of(smtp.feed(b"HELO c\r\n" + transaction("r@grey.test")))
    second = replies_of(smtp.feed(b"RSET\r\n" + transaction("r@grey.test")))[1:]
    assert first[2].startswith(b"450-4.7.1 ") and first[3][:3] == b"554"
    assert [r[:3] for r in second] == [b"250", b"250", b"354", b"250"]
    assert stats.messages == 1
    assert stats.as_dict()["rules"] == {"*@grey.test greylist": {"refused": 1, "passed": 1}}


def test_ratelimit_accepts_n_a_period_then_450_until_the_next():
    rules = RecipientRules.from_text("*@busy.test ratelimit 3/10s\n")
    answers = [rules.answer("c", b"s", b"r@busy.test", now=t) for t in (0, 1, 2, 3, 9.9, 10.0, 10.1)]
    assert [a is None for a in answers] == [True, True, True, False, False, True, True]
    assert answers[3].startswith(b"450-4.7.1 ") and answers[3].endswith(b"\r\n")
    assert rules.as_dict() == {"*@busy.test ratelimit 3/10s": {"refused": 2, "passed": 5}}


def test_lmtp_answers_each_recipient_and_refused_ones_get_no_end_of_data_reply():
    smtp, stats = session(RecipientRules.from_text("permfail@* bounce\n"), lmtp=True)
    replies = replies_of(smtp.feed(b"LHLO c\r\n" + transaction("permfail@x.test", "a@x.test", "b@x.test")))
    assert [r[:3] for r in replies[2:5]] == [b"550", b"250", b"250"]
    assert [r[:3] for r in replies[6:]] == [b"250", b"250"]  # after DATA's 354: one per accepted recipient
    assert stats.messages == 1 and stats.recipients == 2


@pytest.mark.parametrize(
    "text, message",
    [
        ("permfail@*\n", "rules:1: 'permfail@\\*': use MATCH ACTION"),
        ("# ok\n\npermfail@* explode\n", "rules:3: unknown action 'explode'"),
        ("a@* accept now\n", "rules:1: accept takes no arguments"),
        ("a@* defer 550\n", "rules:1: defer code '550': must be a 4xx code"),
        ("a@* bounce 450\n", "rules:1: bounce code '450': must be a 5xx code"),
        ("a@* greylist soon\n", "rules:1: bad duration 'soon'"),
        ("a@* ratelimit\n", "rules:1: ratelimit takes N"),
        ("a@* ratelimit 0\n", "rules:1: ratelimit takes N"),
        ("a@* ratelimit 5/0s\n", "rules:1: ratelimit period must be more than 0"),
        ("a@ bounce\n", "rules:1: bad match 'a@'"),
        ("# nothing\n", "rules: no rules"),
    ],
)
def test_each_bad_line_is_one_error_with_its_line_number(text, message):
    with pytest.raises(RulesError, match=message):
        RecipientRules.from_text(text)


def test_the_settings_read_the_file_once_and_name_it_in_errors(tmp_path):
    path = tmp_path / "rules.txt"
    path.write_text(TABLE)
    settings = SinkSettings("127.0.0.1:0", rules=str(path))
    assert isinstance(settings.rules, RecipientRules) and len(settings.rules.rules) == 5
    path.write_text("permfail@* bounce\nbad\n")
    with pytest.raises(RulesError, match=f"^{path}:2: 'bad': use MATCH ACTION"):
        SinkSettings("127.0.0.1:0", rules=str(path))
    with pytest.raises(LoadkitError, match="--rules .*missing.txt: No such file"):
        SinkSettings("127.0.0.1:0", rules=str(tmp_path / "missing.txt"))


def test_the_command_line_says_a_bad_rules_file_in_one_line(tmp_path):
    path = tmp_path / "rules.txt"
    path.write_text("permfail@* bounce\n*@x.test ratelimit lots\n")
    result = subprocess.run([sys.executable, "-m", "loadkit", "sink", "--rules", str(path), "127.0.0.1:0"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{path}:2: ratelimit takes N" in lines[0]


def test_help_documents_the_rules_format():
    result = subprocess.run([sys.executable, "-m", "loadkit", "sink", "--help"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    for words in ("MATCH ACTION [ARGS]", "defer [CODE]", "bounce [CODE]", "greylist [DELAY]", "ratelimit N[/PERIOD]"):
        assert words in result.stdout


def test_stats_without_rules_say_none_and_the_record_is_json():
    stats = SinkStats()
    record = stats.as_dict()
    assert record["rules"] is None and record["changes"] == []
    json.dumps(record)
