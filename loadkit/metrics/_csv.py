"""Locust's own CSV files in a results folder, complete at the end of the run.

Locust's `StatsCSVFileWriter` rewrites its files once a second and never at
shutdown, so the last second of a run would be missing: `finish()` writes
the closing state once more before closing the files.
"""

from __future__ import annotations

import csv
import time

import gevent
from locust.stats import PERCENTILES_TO_REPORT, StatsCSVFileWriter

from loadkit.results import cannot_write, close_quietly


class LocustCsv:
    """A write that fails (a full disk) stops the writing: `write_failure` holds the
    one-line error and `on_write_failure(error)` is called once."""

    def __init__(self, environment, prefix: str, full_history: bool = False, on_write_failure=None):
        self.writer = StatsCSVFileWriter(environment, PERCENTILES_TO_REPORT, prefix, full_history=full_history)
        self.prefix = prefix
        self.greenlet = None
        self.on_write_failure = on_write_failure
        self.write_failure = None

    def start(self) -> "LocustCsv":
        self.greenlet = gevent.spawn(self._write_every_second)
        return self

    def _write_every_second(self) -> None:
        try:
            self.writer.stats_writer()
        except OSError as error:
            self._failed(error)

    def _failed(self, error: OSError) -> None:
        if self.write_failure is None:
            self.write_failure = cannot_write(f"{self.prefix}_*.csv", error)
            if self.on_write_failure is not None:
                self.on_write_failure(self.write_failure)

    def finish(self) -> None:
        if self.greenlet is not None:
            self.greenlet.kill()
            self.greenlet = None
        if self.write_failure is None:
            try:
                self._write_final_state()
            except OSError as error:
                self._failed(error)
        for handle in (self.writer.requests_csv_filehandle, self.writer.stats_history_csv_filehandle,
                       self.writer.failures_csv_filehandle, self.writer.exceptions_csv_filehandle):
            close_quietly(handle)

    def _write_final_state(self) -> None:
        writer = self.writer
        for handle, columns, write_rows in (
            (writer.requests_csv_filehandle, writer.requests_csv_columns, writer._requests_data_rows),
            (writer.failures_csv_filehandle, writer.failures_columns, writer._failures_data_rows),
            (writer.exceptions_csv_filehandle, writer.exceptions_columns, writer._exceptions_data_rows),
        ):
            handle.seek(0)
            handle.truncate()
            out = csv.writer(handle)
            out.writerow(columns)
            write_rows(out)
        if writer.stats_history_csv_filehandle.tell() == 0:  # stopped before the first write
            writer.stats_history_csv_writer.writerow(writer.stats_history_csv_columns)
        writer._stats_history_data_rows(writer.stats_history_csv_writer, time.time())
        for handle in (writer.requests_csv_filehandle, writer.stats_history_csv_filehandle,
                       writer.failures_csv_filehandle, writer.exceptions_csv_filehandle):
            handle.flush()
