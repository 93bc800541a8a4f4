"""A distributed run on loopback: `locust --master` and two `locust --worker` against `loadkit sink`.

One run, checked three ways. The master's merged histograms must count what
Locust counted and what the sink received, and say which worker did how
much; their p50/p99 must be within 1% of the exact percentiles of every
raw response time the workers kept; and each worker stamps its own trace
source (`<host>-<pid>`) in X-Loadkit-Trace, so the sink's trace log tells
the workers apart, exactly as their shares in run.json.
"""

from __future__ import annotations

import collections
import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from loadkit.hdr import decode, merge_into, nearest_rank, new_histogram, percentiles_ms
from tests.integration.peers import loadkit_sink, locust_and_merged_counts, master_and_workers
from tests.integration.test_distributed_separate_hosts import check_trace_sources

pytestmark = pytest.mark.slow

LOCUSTFILE = str(Path(__file__).resolve().parent / "raw_samples_locustfile.py")


@pytest.fixture(scope="module")
def loopback_run(tmp_path_factory):
    """The run, once for the module: the master's output, its results folder, the sink's stats,
    the workers' raw samples, the trace log's sources and the workers' pids."""
    tmp_path = tmp_path_factory.mktemp("distributed")
    results, samples_dir, trace_log = tmp_path / "results", tmp_path / "samples", tmp_path / "trace.log"
    samples_dir.mkdir()
    environment = dict(os.environ, RAW_SAMPLES_DIR=str(samples_dir))
    options = ["-u", "6", "-r", "6", "-t", "4s", "--results", str(results),
               "--check", "no_worker_lost", "--check", "send:fail_ratio==0"]
    with loadkit_sink(tmp_path, "--trace-log", str(trace_log)) as (url, read_stats):
        with master_and_workers(LOCUSTFILE, url, options, environment=environment) as (master, workers):
            out, err = master.communicate(timeout=90)
            for worker in workers:
                worker.wait(30)
        sink = read_stats()
    assert master.returncode == 0, err[-2000:]
    (folder,) = results.iterdir()
    return SimpleNamespace(
        out=out, folder=folder, sink=sink,
        raw=[json.loads(path.read_text()) for path in samples_dir.iterdir()],
        sources=collections.Counter(line.split()[1] for line in trace_log.read_text().splitlines()),
        worker_pids=[worker.pid for worker in workers],
    )


def test_master_merges_two_workers_exactly(loopback_run):
    folder, sink = loopback_run.folder, loopback_run.sink
    locust_count, merged = locust_and_merged_counts(folder)
    phases = {series["name"]
              for line in (folder / "metrics.jsonl").read_text().splitlines()
              for series in json.loads(line)["series"] if series["kind"] != "request"}
    assert merged == locust_count == sink["messages"] > 0
    assert {"connect", "envelope", "end-of-data"} <= phases

    run = json.loads((folder / "run.json").read_text())
    assert run["workers"] == 2 and len(run["worker_shares"]) == 2
    assert sum(run["worker_shares"].values()) == merged and min(run["worker_shares"].values()) > 0
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    joined = {e["worker"] for e in events if e["kind"] == "worker_joined"}
    assert joined == set(run["worker_shares"])
    assert not [e for e in events if e["kind"] in ("worker_lost", "worker_missing", "count_mismatch")]
    assert "2 of 2 passed" in loopback_run.out


def test_merged_percentiles_match_the_raw_samples_of_both_workers(loopback_run):
    raw = loopback_run.raw
    assert len(raw) == 2 and all(raw)  # both workers sent
    samples = np.concatenate([np.asarray(worker, dtype=float) for worker in raw])

    merged = new_histogram()
    for line in (loopback_run.folder / "metrics.jsonl").read_text().splitlines():
        for series in json.loads(line)["series"]:
            if series["kind"] == "request":
                merge_into(merged, decode(series["histogram"]))
    assert merged.total_count == len(samples) == loopback_run.sink["messages"]

    ours = percentiles_ms(merged, [50.0, 99.0])
    samples.sort()
    for percentile in (50.0, 99.0):
        # the sample at loadkit's one rank rule (nearest rank: ceil(p*N/100))
        exact = float(samples[nearest_rank(percentile, len(samples)) - 1])
        assert abs(ours[percentile] - exact) <= 0.01 * exact, (percentile, ours[percentile], exact)


def test_each_worker_has_its_own_trace_source(loopback_run):
    check_trace_sources(loopback_run.folder, loopback_run.sink, loopback_run.sources, loopback_run.worker_pids)
