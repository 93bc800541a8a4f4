"""The request listener: raw values into per-key buffers, folded into histograms once a tick.

This is a hot path: a process may see 5-10k requests a second, each with
about eight phase times. Per request the listener only appends floats to
``array('d')`` buffers and bumps a few counters; histograms are built at the
tick, for a whole buffer at a time (see `loadkit.hdr.record_ms`). Failures
are rare and take the slower path; their times go to a buffer of their own
(the failed histogram), so the accepted requests' percentiles are theirs alone.

Gevent switches greenlets only when one blocks, so `take()` swapping the
buffers out can never interleave with a listener call.
"""

from __future__ import annotations

from array import array

from loadkit.hdr import new_histogram, record_ms
from loadkit.metrics._series import PHASE, REQUEST, Series
from loadkit.phases import PHASE_SUFFIX


class _Requests:
    """The buffer of one request type+name for the current tick."""

    __slots__ = ("times", "failed_times", "bytes", "errors")

    def __init__(self):
        self.times = array("d")  # accepted
        self.failed_times = array("d")
        self.bytes = 0
        self.errors: dict[str, int] = {}


class _PhaseFailures:
    __slots__ = ("failed", "failed_timed", "errors")

    def __init__(self):
        self.failed = 0
        self.failed_timed = 0  # failures at this phase that have a time for it
        self.errors: dict[str, int] = {}


class ErrorExample:
    """What errors.csv says about one error key: its phase, reply code and one full text."""

    __slots__ = ("phase", "code", "example")

    def __init__(self, phase: str, code: str, example: str):
        self.phase = phase
        self.code = code
        self.example = example


def describe(exception) -> ErrorExample:
    """Phase and code of loadkit's SMTP errors (SMTPReplyError has both, SMTPError a phase)."""
    phase = getattr(exception, "phase", None)
    code = getattr(exception, "code", None)
    return ErrorExample("" if phase is None else str(phase), "" if code is None else str(code), str(exception))


class RequestRecorder:
    """Listens to `events.request`; `take()` + `fold()` turn a tick's buffers into Series."""

    def __init__(self):
        # The fold's numpy, loaded now, before the load starts: loaded at the first tick, its import
        # (60-200 ms) stalled every user of the process once, inside the run's first second.
        import numpy  # noqa: F401

        self._requests: dict[tuple[str, str], _Requests] = {}
        self._phases: dict[str, dict[str, array]] = {}  # request type -> phase -> times
        self._phase_failures: dict[tuple[str, str], _PhaseFailures] = {}
        self.examples: dict[tuple[str, str, str], ErrorExample] = {}  # (type, name, key) for the run

    def on_request(self, request_type, name, response_time, response_length, exception=None, context=None, **_kwargs):
        buffer = self._requests.get((request_type, name))
        if buffer is None:
            if request_type.endswith(PHASE_SUFFIX):
                return  # phase_stats entries: the phases are already recorded from the message's context
            buffer = self._requests[(request_type, name)] = _Requests()
        if exception is None:
            buffer.times.append(response_time)
        else:
            buffer.failed_times.append(response_time)
        buffer.bytes += response_length
        phases = context.get("phases") if context else None
        if phases:
            times = self._phases.get(request_type)
            if times is None:
                times = self._phases[request_type] = {}
            for phase, milliseconds in phases.items():
                phase_times = times.get(phase)
                if phase_times is None:
                    phase_times = times[phase] = array("d")
                phase_times.append(milliseconds)
        if exception is not None:
            self._failure(buffer, request_type, name, exception, phases)

    def _failure(self, buffer: _Requests, request_type, name, exception, phases) -> None:
        key = repr(exception)  # Locust groups failures by it too: "550 5.1.1 at RCPT"
        buffer.errors[key] = buffer.errors.get(key, 0) + 1
        if (request_type, name, key) not in self.examples:
            self.examples[(request_type, name, key)] = describe(exception)
        phase = getattr(exception, "phase", None)
        if phase is None:
            return
        failures = self._phase_failures.get((request_type, phase))
        if failures is None:
            failures = self._phase_failures[(request_type, phase)] = _PhaseFailures()
        failures.failed += 1
        if phases and phase in phases:
            failures.failed_timed += 1
        failures.errors[key] = failures.errors.get(key, 0) + 1

    def take(self):
        """The buffers since the last take; the listener starts on fresh ones."""
        taken = (self._requests, self._phases, self._phase_failures)
        self._requests, self._phases, self._phase_failures = {}, {}, {}
        return taken

    @staticmethod
    def fold(taken) -> list[Series]:
        """Histograms and counts of taken buffers (the tick's work, off the hot path)."""
        requests, phases, phase_failures = taken
        series = []
        for (request_type, name), buffer in requests.items():
            one = Series(REQUEST, request_type, name, ok=len(buffer.times), failed=len(buffer.failed_times),
                         bytes_=buffer.bytes, errors=buffer.errors)
            record_ms(one.histogram, buffer.times)
            if buffer.failed_times:
                one.failed_histogram = new_histogram()
                record_ms(one.failed_histogram, buffer.failed_times)
            series.append(one)
        for request_type, by_phase in phases.items():
            for phase, times in by_phase.items():
                failures = phase_failures.pop((request_type, phase), None)
                one = Series(PHASE, request_type, phase, ok=len(times))
                if failures is not None:
                    one.ok -= failures.failed_timed
                    one.failed, one.errors = failures.failed, failures.errors
                record_ms(one.histogram, times)
                series.append(one)
        for (request_type, phase), failures in phase_failures.items():  # failed before it could be timed
            series.append(Series(PHASE, request_type, phase, failed=failures.failed, errors=failures.errors))
        return series

    def pending(self) -> bool:
        return bool(self._requests)
