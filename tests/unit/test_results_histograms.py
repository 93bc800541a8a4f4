"""`SpanDecoder`: metrics.jsonl's histograms decoded through one scratch array, as `loadkit.hdr.decode_span` does."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from loadkit.hdr import HistogramError, decode_span, encode, new_histogram, record_ms
from loadkit.results import SpanDecoder


def _same(left, right) -> bool:
    return left[0] == right[0] and np.array_equal(left[1], right[1])


def test_every_histogram_decodes_as_hdr_decodes_it_and_leaves_nothing_behind():
    rng = random.Random(3)
    decoder = SpanDecoder()
    texts = []
    for size in (1, 2, 50, 5_000):
        histogram = new_histogram()
        record_ms(histogram, [rng.lognormvariate(1, 1.5) for _ in range(size)])
        texts.append(encode(histogram))
    texts.append(encode(new_histogram()))  # empty
    for text in texts + texts[::-1]:
        span = decoder.decode(text)
        assert _same(span, decode_span(text))
        assert span[1].sum() == decode_span(text)[1].sum()
    assert not decoder._scratch.any()  # each decode zeroes what it wrote


def test_another_layout_and_bytes_go_through_hdr():
    other = HdrHistogram(1, 60_000_000, 2)
    for value in (5, 900, 123_456):
        other.record_value(value)
    text = other.encode()  # bytes, as hdrh gives them
    assert _same(SpanDecoder().decode(text), decode_span(text))
    assert SpanDecoder().decode(text)[1].sum() == 3


@pytest.mark.parametrize("text", ["", "not base64!", "SElTVEZBQUFBQ", "HISTFAAAACl4nJNpmSzMwMBgzQABzFCaEUKzMjMxMDAyMDAwcw"])
def test_text_that_is_not_a_histogram_raises_as_hdr_does(text):
    decoder = SpanDecoder()
    with pytest.raises(HistogramError):
        decode_span(text)
    with pytest.raises(HistogramError):
        decoder.decode(text)
    assert not decoder._scratch.any()
