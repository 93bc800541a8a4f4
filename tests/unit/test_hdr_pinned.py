"""What loadkit.hdr takes from hdrh beyond its public API, so that an upgrade that changes it fails here.

- ``pyhdrh.decode``, hdrh's C decoder, called straight into a numpy array
  (the report decodes tens of thousands of histograms);
- the bucket attributes ``record_ms`` and ``layout_of`` compute indexes from
  (unit_magnitude, sub_bucket_half_count_magnitude, sub_bucket_mask, ...).

pyproject.toml pins the exact hdrhistogram version these were checked with.
"""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import numpy as np

from loadkit import hdr

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_the_installed_hdrhistogram_is_the_pinned_one():
    pinned = re.search(r'"hdrhistogram==([^"]+)"', PYPROJECT.read_text(encoding="utf-8"))
    assert pinned, "pyproject.toml must pin hdrhistogram's exact version (loadkit.hdr uses its C decoder)"
    assert version("hdrhistogram") == pinned.group(1)


def test_the_c_decoder_fills_a_numpy_array_as_hdrh_decodes():
    histogram = hdr.new_histogram()
    samples = np.random.default_rng(8).lognormal(np.log(3.0), 1.4, 30_000)
    hdr.record_ms(histogram, samples)
    text = hdr.encode(histogram)
    fast = hdr._decode_standard(text)
    assert fast is not None, "the standard layout must take the C decoder's path"
    counts, first, last = fast
    public = np.frombuffer(hdr.HdrHistogram.decode(text).counts, dtype=np.int64)
    assert np.array_equal(counts, public)
    nonzero = np.flatnonzero(public)
    assert (first, last) == (nonzero[0], nonzero[-1])
    assert hdr._decode_standard(hdr.encode(hdr.new_histogram()))[1:] == (0, -1)


def test_bulk_recording_uses_hdrhs_own_bucket_index():
    values = np.random.default_rng(9).lognormal(np.log(5.0), 2.0, 5_000)
    bulk = hdr.new_histogram()
    hdr.record_ms(bulk, values)
    one_by_one = hdr.new_histogram()
    for value in values:
        hdr.record_us(one_by_one, int(np.rint(value * 1000.0)))
    assert bulk.equals(one_by_one)
    assert (bulk.total_count, bulk.min_value, bulk.max_value) == (one_by_one.total_count, one_by_one.min_value, one_by_one.max_value)
