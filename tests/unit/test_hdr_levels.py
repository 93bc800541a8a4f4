"""Histograms encoded at loadkit's zlib levels decode to the same counts through every reader.

A master writes metrics.jsonl at `WRITE_LEVEL` and workers send at
`WIRE_LEVEL`; hdrh compresses at 6. The V2 format only asks for a zlib
stream, so each reader must give the same counts whatever the level:
hdrh's own ``HdrHistogram.decode``, `loadkit.hdr.decode`, `add_encoded`,
`decode_span`, `decode_counts` and ``results.SpanDecoder``. Java's HdrHistogram
is checked by ``scripts/hdr-java-readers`` where a JVM and its jar are installed
(not here: a fresh machine cannot fetch the jar).
"""

from __future__ import annotations

import base64
import zlib

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from loadkit import hdr
from loadkit.metrics._series import MergedSeries, Series
from loadkit.metrics._worker import wire_series
from loadkit.results._histograms import SpanDecoder

LEVELS = (hdr.WIRE_LEVEL, hdr.WRITE_LEVEL, hdr.HDRH_LEVEL)


def histograms() -> dict[str, HdrHistogram]:
    rng = np.random.default_rng(23)
    shapes = {"empty": [], "one value": [0.001], "clamped at both ends": [0.0001, 7_200_000.0],
              "a second of mail": rng.lognormal(np.log(3.0), 1.2, 5_000),
              "sparse and wide": rng.lognormal(np.log(50.0), 3.0, 40)}
    made = {}
    for name, values in shapes.items():
        made[name] = hdr.new_histogram()
        hdr.record_ms(made[name], values)
    return made


HISTOGRAMS = histograms()


def counts_of(histogram: HdrHistogram) -> np.ndarray:
    return np.frombuffer(histogram.counts, dtype=np.int64).copy()


def zlib_stream(text: str) -> bytes:
    return base64.b64decode(text)[hdr.EXTERNAL_HEADER.size :]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("name", list(HISTOGRAMS))
def test_every_reader_decodes_the_same_counts_at_every_level(name, level):
    histogram = HISTOGRAMS[name]
    expected = counts_of(histogram)
    text = hdr.encode(histogram, level)
    nonzero = np.flatnonzero(expected)
    last = int(nonzero[-1]) if len(nonzero) else -1
    assert hdr.encode_counts(expected, last, level) == hdr.encode_counts(expected, None, level) == text

    by_hdrh = HdrHistogram.decode(text.encode("ascii"))
    assert np.array_equal(counts_of(by_hdrh), expected)
    assert by_hdrh.total_count == histogram.total_count == int(expected.sum())
    assert np.array_equal(counts_of(hdr.decode(text)), expected)
    assert np.array_equal(hdr.decode_counts(text), expected)
    added = hdr.empty_counts()
    added[7] = 2  # added to, not overwritten
    total, first, last_added = hdr.add_encoded(added, text)
    added[7] -= 2
    assert np.array_equal(added, expected)
    assert total == int(expected.sum())
    assert not hdr._scratch().counts.any()
    for first_index, values in (hdr.decode_span(text), SpanDecoder().decode(text)):
        span = np.zeros_like(expected)
        span[first_index : first_index + len(values)] = values
        assert np.array_equal(span, expected)
    if len(nonzero):
        assert (first, last_added) == (nonzero[0], nonzero[-1])
    else:
        assert (total, first, last_added) == (0, 0, -1)


@pytest.mark.parametrize("name", list(HISTOGRAMS))
def test_hdrhs_level_is_hdrhs_own_text_byte_for_byte(name):
    histogram = HISTOGRAMS[name]
    assert hdr.encode(histogram) == histogram.encode().decode("ascii")
    assert hdr.encode_counts(counts_of(histogram)) == histogram.encode().decode("ascii")


def test_the_levels_are_the_ones_said():
    """Workers send stored blocks (a copy to inflate); a master writes a compressed stream."""
    histogram = HISTOGRAMS["a second of mail"]
    payload = zlib.decompress(zlib_stream(hdr.encode(histogram)))
    wire = zlib_stream(hdr.encode(histogram, hdr.WIRE_LEVEL))
    assert wire[2] & 0b110 == 0  # the first block's type: stored
    assert len(wire) > len(payload)
    written = zlib_stream(hdr.encode(histogram, hdr.WRITE_LEVEL))
    assert written[2] & 0b110 != 0 and len(written) < 0.7 * len(payload)

    series = Series("request", "SMTP", "send", histogram=histogram, ok=int(histogram.total_count))
    sent = wire_series([series])[0]
    assert sent["histogram"] == hdr.encode(histogram, hdr.WIRE_LEVEL)
    merged = MergedSeries(*series.key)
    merged.add_json(sent)
    assert merged.to_json()["histogram"] == hdr.encode(histogram, hdr.WRITE_LEVEL)


def test_another_layout_keeps_hdrhs_encoding_at_any_level():
    other = HdrHistogram(1, 60_000_000, 2)
    for value in (5, 500, 50_000):
        other.record_value(value)
    assert hdr.encode(other, hdr.WIRE_LEVEL) == other.encode().decode("ascii")
