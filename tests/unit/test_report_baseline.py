"""``--baseline``: this run against another, what got worse flagged, the baseline drawn on the same charts."""

from __future__ import annotations

import pytest

from loadkit.report import Row, Run, build_report, compare_runs, load_run
from tests.unit.test_report import embedded_charts, read_glance, read_tables, write_results
from tests.unit.test_report_metrics import make_results


def row(rate=100.0, count=1000, failures=0, p95=10.0, p99=20.0, name="send") -> Row:
    latency = {"min": 1.0, "p50": 5.0, "p90": 9.0, "p95": p95, "p99": p99, "p99.9": 30.0, "max": 40.0}
    return Row("SMTP", name, count, failures, rate, latency)


def flagged(current: Row, baseline: Row) -> set[str]:
    run, base = Run(path=None, source="x", total=current), Run(path=None, source="y", total=baseline)
    run.total.kind = base.total.kind = "total"
    return {change.measure for change in compare_runs(run, base) if change.worse}


@pytest.mark.parametrize(
    "current, worse",
    [
        (row(), set()),
        (row(p95=10.9, p99=21.9), set()),  # +9%, +9.5%: within the tolerance
        (row(p95=11.1), {"p95"}),  # +11%
        (row(p99=30.0), {"p99"}),
        (row(rate=89.0), {"throughput"}),  # -11%
        (row(rate=150.0, p95=5.0), set()),  # better is not worse
        (row(failures=1), {"failures"}),  # up from none
        (row(failures=2), {"failures"}),
    ],
)
def test_what_counts_as_worse(current, worse):
    assert flagged(current, row()) == worse


def test_a_small_rise_in_an_existing_failure_ratio_is_not_flagged():
    assert flagged(row(count=100_000, failures=1050), row(count=100_000, failures=1000)) == set()  # +0.05 pt
    assert flagged(row(count=100_000, failures=1200), row(count=100_000, failures=1000)) == {"failures"}  # +0.2 pt


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    parent = tmp_path_factory.mktemp("baseline")
    names = (("SMTP", "send"), ("LMTP", "deliver"))
    baseline = make_results(parent / "before", seconds=10, per_second=30, names=names, failure_every=200)
    # The planted regression: latencies 60% higher, 1 in 20 failing, a quarter less throughput.
    current = make_results(parent / "after", seconds=10, per_second=22, names=names, latency_ms=12.8, failure_every=20)
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
        assert {"Throughput", "Failures", "p95", "p99"} <= measures, name
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
