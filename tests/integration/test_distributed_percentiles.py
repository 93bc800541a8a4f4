"""Merged percentiles of a distributed run against the raw samples of every worker.

A master and two worker processes on loopback send to `loadkit sink`; each
worker also keeps every raw response time. The master's merged histograms
(metrics.jsonl) must give p50/p99 within 1% of the exact percentiles of all
raw samples, and count exactly what the workers sent and the sink received.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from loadkit.hdr import decode, merge_into, nearest_rank, new_histogram, percentiles_ms
from tests.integration.peers import loadkit_sink, run_master_and_workers

LOCUSTFILE = str(Path(__file__).resolve().parent / "raw_samples_locustfile.py")


def test_merged_percentiles_match_the_raw_samples_of_both_workers(tmp_path):
    results, samples_dir = tmp_path / "results", tmp_path / "samples"
    samples_dir.mkdir()
    environment = dict(os.environ, RAW_SAMPLES_DIR=str(samples_dir))
    with loadkit_sink(tmp_path) as (url, read_stats):
        master = run_master_and_workers(
            LOCUSTFILE, url, ["-u", "6", "-r", "6", "-t", "4s", "--results", str(results)], environment=environment
        )
        sink = read_stats()
    err = master.stderr
    assert master.returncode == 0, err[-2000:]

    raw = [json.loads(path.read_text()) for path in samples_dir.iterdir()]
    assert len(raw) == 2 and all(raw)  # both workers sent
    samples = np.concatenate([np.asarray(worker, dtype=float) for worker in raw])

    (folder,) = results.iterdir()
    merged = new_histogram()
    for line in (folder / "metrics.jsonl").read_text().splitlines():
        for series in json.loads(line)["series"]:
            if series["kind"] == "request":
                merge_into(merged, decode(series["histogram"]))
    assert merged.total_count == len(samples) == sink["messages"]

    ours = percentiles_ms(merged, [50.0, 99.0])
    samples.sort()
    for percentile in (50.0, 99.0):
        # the sample at loadkit's one rank rule (nearest rank: ceil(p*N/100))
        exact = float(samples[nearest_rank(percentile, len(samples)) - 1])
        assert abs(ours[percentile] - exact) <= 0.01 * exact, (percentile, ours[percentile], exact)
