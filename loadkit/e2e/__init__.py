"""End-to-end delivery: what a target accepted against what reached the sink.

    _delivery   trace ids of accepted messages, the sink's trace log, the
                relay's drain, e2e.json (see its docstring for the fields)
    _clock      the offset between this host's clock and a loadkit sink's
    plugin      the Locust side: --e2e-* options, accepted messages on each
                process, workers' ids and clock offsets merged on the master

This package's names import without Locust; `plugin` is Locust's side and is
registered by `loadkit.plugin`.
"""

from loadkit.e2e._clock import METHOD as CLOCK_METHOD
from loadkit.e2e._clock import ClockError, ClockOffset, measure_sink_clock_offset
from loadkit.e2e._delivery import (
    AcceptedMessages,
    SequenceSet,
    delivery_summary,
    postfix_queue_size,
    read_trace_log,
    sink_trace_log,
    write_e2e,
)
from loadkit.results import E2E_FILE

__all__ = [
    "CLOCK_METHOD",
    "E2E_FILE",
    "AcceptedMessages",
    "ClockError",
    "ClockOffset",
    "SequenceSet",
    "delivery_summary",
    "measure_sink_clock_offset",
    "postfix_queue_size",
    "read_trace_log",
    "sink_trace_log",
    "write_e2e",
]
