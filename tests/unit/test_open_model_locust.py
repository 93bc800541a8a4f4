"""The open model's Locust side without Locust running: settings, the per-second counts, the rate verdict."""

from __future__ import annotations

import pytest

from loadkit.arrivals import ArrivalError
from loadkit.metrics._open_model import OPEN, OpenModelRecorder, open_totals
from loadkit.metrics._series import PHASE, REQUEST
from loadkit.open_model import OpenModelError
from loadkit.open_model_locust import (
    OpenModelSettings,
    SessionPool,
    rate_verdict,
    settings_from_options,
)


class Options:
    def __init__(self, rate="", arrival="even", arrival_seed=None, max_sessions=0, overload="queue"):
        self.rate, self.arrival, self.arrival_seed = rate, arrival, arrival_seed
        self.max_sessions, self.overload = max_sessions, overload


def test_no_rate_is_the_closed_model():
    assert settings_from_options(Options()) is None
    assert settings_from_options(None) is None


def test_settings_are_checked_once_with_one_line_errors():
    settings = settings_from_options(Options("50:30s,200:2m", "poisson", 7, 20, "drop"))
    assert settings.plan.duration == 150 and settings.arrival == "poisson" and settings.seed == 7
    assert settings.max_sessions == 20 and settings.overload == "drop"
    assert settings_from_options(Options("200")).max_sessions is None  # 0: the users
    with pytest.raises(ArrivalError, match="200/s"):
        OpenModelSettings("200/s")
    with pytest.raises(OpenModelError, match="queue or drop"):
        OpenModelSettings("200", overload="shed")
    with pytest.raises(OpenModelError, match="--max-sessions"):
        OpenModelSettings("200", max_sessions=-1)


def test_the_pool_caps_sessions_at_its_users_or_max_sessions():
    pool = SessionPool(OpenModelSettings("100", max_sessions=3))
    for user in range(5):
        pool.join(user)
    assert pool.cap == 3
    pool = SessionPool(OpenModelSettings("100"))
    pool.join("a")
    pool.join("b")
    assert pool.cap == 2
    pool.leave("a")
    assert pool.cap == 1


def test_rate_verdict_says_generator_limited_only_when_the_cpu_was_saturated():
    assert rate_verdict(1000, 995, cpu_high=False) is None
    assert rate_verdict(0, 0, cpu_high=True) is None
    short = rate_verdict(1000, 900, cpu_high=False)
    assert "900 of 1000" in short and "generator-limited" not in short
    assert rate_verdict(1000, 900, cpu_high=True).startswith("sent 900 of 1000 offered (90.0%")
    assert "generator-limited" in rate_verdict(1000, 900, cpu_high=True)


class FakeCounts:
    offered = started = dropped = 0


class FakePool:
    def __init__(self):
        self.counts = FakeCounts()


def test_the_recorder_adds_each_interval_s_offered_sent_dropped(monkeypatch):
    pool = FakePool()
    monkeypatch.setattr("loadkit.open_model_locust.any_pool", lambda: pool)
    recorder = OpenModelRecorder()
    recorder.on_request("SMTP", "send", 12.0, 100, context={"phases": {"service": 10.0, "lag": 2.0}})
    pool.counts.offered, pool.counts.started, pool.counts.dropped = 10, 8, 2
    assert recorder.pending()
    series = recorder.fold(recorder.take())
    by_key = {one.key: one for one in series}
    assert by_key[(REQUEST, "SMTP", "send")].ok == 1
    assert by_key[(PHASE, "SMTP", "service")].ok == 1 and by_key[(PHASE, "SMTP", "lag")].ok == 1
    assert [by_key[(OPEN, OPEN, name)].ok for name in ("offered", "sent", "dropped")] == [10, 8, 2]
    pool.counts.offered, pool.counts.started = 15, 13
    second = {one.key: one.ok for one in recorder.fold(recorder.take())}
    assert second == {(OPEN, OPEN, "offered"): 5, (OPEN, OPEN, "sent"): 5, (OPEN, OPEN, "dropped"): 0}
    assert not recorder.pending()
    assert recorder.fold(recorder.take()) == []  # nothing new: no series at all
    totals = open_totals({(OPEN, OPEN, "offered"): [15, 0, 0], (OPEN, OPEN, "sent"): [13, 0, 0]})
    assert totals == {"offered": 15, "sent": 13, "dropped": 0}


def test_without_a_pool_the_recorder_is_the_request_recorder(monkeypatch):
    monkeypatch.setattr("loadkit.open_model_locust.any_pool", lambda: None)
    recorder = OpenModelRecorder()
    assert not recorder.pending()
    recorder.on_request("SMTP", "send", 12.0, 100)
    assert [one.key for one in recorder.fold(recorder.take())] == [(REQUEST, "SMTP", "send")]
