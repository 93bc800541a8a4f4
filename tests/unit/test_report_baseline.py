"""``--baseline``: this run against another, what got worse flagged, the baseline drawn on the same charts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loadkit.report import TOTAL_LABEL, Row, Run, build_report, compare_runs, load_run
from loadkit.report._compare import mann_whitney_p, settings_differences
from tests.unit.test_report import embedded_charts, read_glance, read_tables, write_results
from tests.unit.test_report_metrics import make_results


def row(rate=100.0, count=1000, failures=0, p50=5.0, p95=10.0, p99=20.0, name="send") -> Row:
    latency = {"min": 1.0, "p50": p50, "p90": 9.0, "p95": p95, "p99": p99, "p99.9": 30.0, "max": 40.0}
    return Row("SMTP", name, count, failures, rate, latency, kind="total")


def run_of(total: Row, seconds: int = 20, spread: float = 0.02, seed: int = 1) -> Run:
    """A run whose every second is near its totals: rate and percentiles jitter by ``spread`` (a share)."""
    rng = np.random.default_rng(seed)

    def jitter(value):
        return value * (1 + spread * rng.standard_normal(seconds))

    elapsed = np.arange(seconds, dtype=float)
    timeline = pd.DataFrame({"elapsed": elapsed, "ok_per_s": jitter(total.rate), "failed_per_s": 0.0, "users": 10.0})
    over_time = pd.DataFrame({"elapsed": elapsed, **{key: jitter(total.latency[key]) for key in ("p50", "p95", "p99")}})
    return Run(path=None, source="x", total=total, timeline=timeline, percentiles_over_time={TOTAL_LABEL: over_time})


def flagged(current: Row, baseline: Row, spread: float = 0.02) -> set[str]:
    run, base = run_of(current, spread=spread, seed=1), run_of(baseline, spread=spread, seed=2)
    return {change.measure for change in compare_runs(run, base) if change.worse}


@pytest.mark.parametrize(
    "current, worse",
    [
        (row(), set()),
        (row(p95=10.9, p99=21.9), set()),  # +9%, +9.5%: within the tolerance
        (row(p95=11.1), {"p95"}),  # +11%, 1.1 ms, every second apart
        (row(p99=30.0), {"p99"}),
        (row(rate=89.0), {"throughput"}),  # -11%
        (row(rate=150.0, p95=5.0), set()),  # better is not worse
        (row(failures=10), {"failures"}),  # up from none
        (row(failures=20), {"failures"}),
        (row(failures=2), set()),  # up from none, but two failures are no trend
    ],
)
def test_what_counts_as_worse(current, worse):
    assert flagged(current, row()) == worse


def test_a_tiny_latency_doubling_is_under_the_floor():
    # 0.001 -> 0.002 ms is +100%, and nothing: the floor is 1 ms.
    assert flagged(row(p50=0.002, p95=0.002, p99=0.002), row(p50=0.001, p95=0.001, p99=0.001)) == set()
    assert flagged(row(p50=1.5, p95=1.5, p99=1.5), row(p50=1.0, p95=1.0, p99=1.0)) == set()  # +50%, 0.5 ms


def test_a_percentile_needs_enough_requests():
    assert flagged(row(count=500, p99=40.0), row(count=500)) == set()  # a p99 of 500 requests is 5 of them
    assert flagged(row(count=500, p95=20.0), row(count=500)) == {"p95"}


def test_a_change_within_each_run_s_own_spread_is_not_flagged():
    # +20% on p95, but each run's seconds scatter by 40%: the two runs overlap.
    assert flagged(row(p95=12.0), row(), spread=0.4) == set()
    assert flagged(row(p95=12.0), row(), spread=0.02) == {"p95"}


def test_without_per_interval_values_nothing_is_flagged():
    run, base = Run(path=None, source="x", total=row(p95=30.0, rate=10.0)), Run(path=None, source="y", total=row())
    changes = compare_runs(run, base)
    assert not any(change.worse for change in changes)
    assert {change.note for change in changes if change.measure in ("p95", "throughput")} == {
        "too few intervals to know the noise (0 and 0, need 5)", "no per-interval rates to know the noise",
    }  # fmt: skip


def test_mann_whitney_agrees_with_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    for shift in (0.0, 0.3, 1.0):
        a, b = rng.normal(0, 1, 18), rng.normal(shift, 1, 18).round(1)
        expected = stats.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic").pvalue
        assert mann_whitney_p(a, b) == pytest.approx(expected, rel=1e-6)


def test_the_settings_check_says_what_differs():
    a, b = run_of(row()), run_of(row())
    a.metadata, b.metadata = {"users": 20, "spawn_rate": 10}, {"users": 40, "spawn_rate": 10}
    a.duration, b.duration = 20.0, 20.3
    assert settings_differences(a, b) == (["spawn rate 10", "duration 20 s"], ["users 40 \u2192 20"])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    parent = tmp_path_factory.mktemp("baseline")
    names = (("SMTP", "send"), ("LMTP", "deliver"))
    # 1,500 and 1,100 requests per name: enough for a p99 in each run.
    # Steady latency in both: each second like the others, as a server's under a constant load.
    baseline = make_results(parent / "before", seconds=10, per_second=150, names=names, failure_every=200, rise=0)
    # The planted regression: latencies 60% higher, 1 in 20 failing, a quarter less throughput.
    current = make_results(parent / "after", seconds=10, per_second=110, names=names, latency_ms=12.8, failure_every=20, rise=0)
    return baseline, current


def worse_measures(table: list[dict[str, str]]) -> dict[str, set[str]]:
    return {row["Name"]: set(filter(None, row["Worse"].split(", "))) for row in table}


def test_the_planted_regression_is_flagged_in_the_comparison_table(runs):
    baseline, current = runs
    page = build_report(current.folder, baseline=baseline.folder).read_text(encoding="utf-8")
    tables = read_tables(page)
    worse = worse_measures(tables["comparison"])
    assert list(worse) == ["All requests", "LMTP deliver", "SMTP send"]
    for name, measures in worse.items():
        assert {"Failures", "p95", "p99"} <= measures, name
    # Rates per second are kept for all requests together: a name's throughput has no noise to test against.
    assert "Throughput" in worse["All requests"] and "Throughput" not in worse["SMTP send"]
    assert {"p95", "p99"} <= worse_measures(tables["comparison-phases"])["SMTP rcpt (phase)"]

    total = tables["comparison"][0]
    before, after = load_run(baseline.folder).total.latency["p95"], load_run(current.folder).total.latency["p95"]
    assert total["p95 ms"].endswith(f"\u00b7 {100 * (after / before - 1):+.1f}%")
    flagged_count = sum(len(m) for table in ("comparison", "comparison-phases") for m in worse_measures(tables[table]).values())
    assert read_glance(page)["worse than baseline"] == str(flagged_count)
    assert "Baseline: <b>before</b>" in page


def test_the_baseline_is_drawn_on_the_charts(runs):
    baseline, current = runs
    alone = build_report(current.folder, current.folder.parent / "alone.html").read_text(encoding="utf-8")
    compared = build_report(current.folder, current.folder.parent / "compared.html", baseline=baseline.folder).read_text(encoding="utf-8")
    assert "Grey dashed lines" in compared and "Grey dashed lines" not in alone
    # Same charts, plus the baseline's reply codes; each shared chart differs by the baseline drawn on it.
    assert len(embedded_charts(compared)) == len(embedded_charts(alone)) + 1
    for key in ("throughput", "percentiles-1", "distribution", "knee", "phases"):
        assert _png_of(alone, key) != _png_of(compared, key), key


def _png_of(page: str, key: str) -> str:
    start = page.index(f'id="chart-{key}"')
    return page[start : page.index("</figure>", start)]


def test_the_same_run_as_its_own_baseline_has_nothing_worse(runs):
    _, current = runs
    page = build_report(current.folder, current.folder.parent / "self.html", baseline=current.folder).read_text(encoding="utf-8")
    tables = read_tables(page)
    assert all(r["Worse"] == "" for table in ("comparison", "comparison-phases") for r in tables[table])
    assert read_glance(page)["worse than baseline"] == "0"


def test_a_locust_csv_run_can_be_the_baseline_of_a_metrics_run(runs, tmp_path):
    _, current = runs
    csv_run = write_results(tmp_path / "csv-run")
    page = build_report(current.folder, tmp_path / "mixed.html", baseline=csv_run).read_text(encoding="utf-8")
    names = {r["Name"] for r in read_tables(page)["comparison"]}
    assert names == {"All requests", "SMTP send"}  # the names both runs have, and the totals
