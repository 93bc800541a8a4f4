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


class LocustCsv:
    def __init__(self, environment, prefix: str, full_history: bool = False):
        self.writer = StatsCSVFileWriter(environment, PERCENTILES_TO_REPORT, prefix, full_history=full_history)
        self.greenlet = None

    def start(self) -> "LocustCsv":
        self.greenlet = gevent.spawn(self.writer.stats_writer)
        return self

    def finish(self) -> None:
        if self.greenlet is not None:
            self.greenlet.kill()
            self.greenlet = None
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
        writer.close_files()
