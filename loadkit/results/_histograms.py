"""metrics.jsonl's histograms decoded for a reader that merges hundreds of thousands of them.

A 24-hour run holds 864,000 histograms (86,400 intervals, ten series each)
and a report or a check decodes every one. `loadkit.hdr.decode_span` gives
each its own 23,552-counter array; `SpanDecoder` decodes into one scratch
array it keeps, copies out the few hundred counters that are set and zeroes
them again. Same wire format, same C decoder, same result as
`loadkit.hdr.decode_span`; histograms of another layout, and text that is
not a histogram, go through `loadkit.hdr.decode_span` itself (which raises
`HistogramError` for the latter). numpy and hdrh are imported when a
decoder is made: the results package is imported by the sink, which starts
without numpy.
"""

from __future__ import annotations

import binascii
import struct
import zlib

# hdrh's V2 wire format: base64 of [cookie, length] + zlib([payload header] + varint counts).
EXTERNAL_HEADER = struct.Struct(">II")
PAYLOAD_HEADER = struct.Struct(">IIIIQQd")  # cookie, payload length, offset, figures, lowest, highest, ratio
EXTERNAL_SIZE = EXTERNAL_HEADER.size
PAYLOAD_SIZE = PAYLOAD_HEADER.size
# Bound once: `decode` runs for every histogram of the file.
a2b_base64, decompress = binascii.a2b_base64, zlib.decompress
unpack_external, unpack_payload = EXTERNAL_HEADER.unpack_from, PAYLOAD_HEADER.unpack_from


class SpanDecoder:
    """``decode(encoded)`` -> (first index, counts from there to the last non-zero one), as
    `loadkit.hdr.decode_span`, through one scratch array. One decoder per reader: not shared
    between threads."""

    def __init__(self):
        import pyhdrh
        from hdrh.codec import V2_COMPRESSION_COOKIE_BASE, V2_ENCODING_COOKIE_BASE

        from loadkit.hdr import HIGHEST_US, LOWEST_US, SIGNIFICANT_FIGURES, decode_span, empty_counts

        self._compression_cookie, self._encoding_cookie = V2_COMPRESSION_COOKIE_BASE, V2_ENCODING_COOKIE_BASE
        self._standard = (LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)
        self._fallback = decode_span
        self._decode_into = pyhdrh.decode
        self._scratch = empty_counts()
        self._address = self._scratch.ctypes.data
        self._length = len(self._scratch)
        self._empty = self._scratch[:0].copy()

    def decode(self, encoded: str | bytes):
        try:
            raw = a2b_base64(encoded)
            cookie, length = unpack_external(raw)
            if cookie & ~0xF0 != self._compression_cookie or length != len(raw) - EXTERNAL_SIZE:
                return self._fallback(encoded)
            data = decompress(memoryview(raw)[EXTERNAL_SIZE:])
            cookie, _, _, figures, lowest, highest, _ = unpack_payload(data)
        except Exception:  # noqa: BLE001 - not base64, not zlib, too short: hdr says what is wrong
            return self._fallback(encoded)
        if cookie & ~0xF0 != self._encoding_cookie or (lowest, highest, figures) != self._standard:
            return self._fallback(encoded)
        scratch = self._scratch
        try:
            found = self._decode_into(data, PAYLOAD_SIZE, self._address, self._length, 8)
        except BaseException:
            scratch[:] = 0  # whatever it wrote before it stopped
            raise
        if not found["total"]:
            return 0, self._empty
        first, last = found["min_nonzero_index"], found["max_nonzero_index"] + 1
        span = scratch[first:last].copy()
        scratch[first:last] = 0
        return first, span


def histogram_from_counts(counts):
    """An hdrh histogram (standard layout) holding a standard-layout counts array: for readers
    that add spans into arrays and hand one histogram on. Each counter's count is recorded at
    its bucket's lowest value, so it lands in the same bucket."""
    import numpy as np

    from loadkit.hdr import new_histogram, standard_layout

    histogram = new_histogram()
    lowest = standard_layout().lowest
    for index in np.flatnonzero(counts).tolist():
        histogram.record_value(int(lowest[index]), int(counts[index]))
    return histogram
