"""``loadkit serve RESULTS [--port 8089] [--bind ADDR] [--for TIME]``.

Keeps a finished run's results reachable over HTTP for a while, so they can
be fetched from where the run happened (a Kubernetes pod, a CI container):

    /                  an index of the folder's files
    /report.html       the report (``loadkit report`` writes it)
    /results.tar.gz    the whole folder, archived as it is sent
    /<file>            any one file of the folder

RESULTS is a results folder (it has run.json) or a folder of them, such as
``reports/``: then the newest one is served. Loopback only unless ``--bind``
says otherwise. It stops after ``--for`` (default: never) or on SIGTERM or
Ctrl-C, with exit code 0; a master runs it after Locust and exits with
Locust's code, so the run's verdict is not lost.

Standard library only: no Locust, no gevent.
"""

from __future__ import annotations

import argparse
import html
import signal
import sys
import tarfile
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from loadkit.arrivals import ArrivalError, parse_timespan
from loadkit.errors import UsageError
from loadkit.results import REPORT_FILE, RUN_FILE

ARCHIVE_NAME = "results.tar.gz"
DEFAULT_PORT = 8089
CHUNK = 64 * 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", metavar="RESULTS",
                        help="a results folder, or a folder of them (the newest is served)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, metavar="PORT",
                        help=f"TCP port (default {DEFAULT_PORT}; 0 picks a free one)")
    parser.add_argument("--bind", default="127.0.0.1", metavar="ADDR",
                        help="address to listen on (default 127.0.0.1; 0.0.0.0 for all interfaces)")
    parser.add_argument("--for", dest="duration", metavar="TIME",
                        help="stop after this long: 90, 90s, 10m, 1h (default: until SIGTERM or Ctrl-C)")


def find_results_folder(path: Path) -> Path:
    """`path` itself when it is a results folder, else the newest results folder in it."""
    if not path.is_dir():
        raise UsageError(f"{path}: no such folder")
    if (path / RUN_FILE).is_file():
        return path
    runs = [child for child in path.iterdir() if (child / RUN_FILE).is_file()]
    if not runs:
        raise UsageError(f"{path}: not a results folder (no {RUN_FILE}), and holds none")
    return max(runs, key=lambda child: ((child / RUN_FILE).stat().st_mtime, child.name))


class ResultsHandler(BaseHTTPRequestHandler):
    """GET only; every path resolves inside the served folder or is a 404."""

    folder: Path  # set on the subclass made by `make_server`
    server_version = "loadkit-serve"

    def do_GET(self):  # http.server's naming
        self._answer(send_body=True)

    def do_HEAD(self):
        self._answer(send_body=False)

    def _answer(self, send_body: bool):
        name = unquote(urlsplit(self.path).path).lstrip("/")
        if name in ("", "index.html"):
            self._send_bytes(self._index().encode(), "text/html; charset=utf-8", send_body)
        elif name == ARCHIVE_NAME:
            self._send_archive(send_body)
        else:
            file = self._file(name)
            if file is None:
                hint = f" (run `loadkit report {self.folder}` first)" if name == REPORT_FILE else ""
                self.send_error(HTTPStatus.NOT_FOUND, f"no {name} in the results{hint}")
            else:
                self._send_file(file, send_body)

    def _file(self, name: str) -> Path | None:
        root = self.folder.resolve()
        candidate = (root / name).resolve()
        if candidate == root or root not in candidate.parents or not candidate.is_file():
            return None
        return candidate

    def _files(self) -> list[str]:
        return sorted(str(p.relative_to(self.folder)) for p in self.folder.rglob("*") if p.is_file())

    def _index(self) -> str:
        title = html.escape(self.folder.name)
        links = [f'<li><a href="/{ARCHIVE_NAME}">{ARCHIVE_NAME}</a> (the whole folder)</li>']
        if (self.folder / REPORT_FILE).is_file():
            links.append(f'<li><a href="/{REPORT_FILE}">{REPORT_FILE}</a></li>')
        links += [f'<li><a href="/{quote(name)}">{html.escape(name)}</a></li>' for name in self._files()]
        return (f"<!doctype html><meta charset=utf-8><title>{title}</title>"
                f"<h1>{title}</h1><ul>{''.join(links)}</ul>\n")

    def _send_bytes(self, body: bytes, content_type: str, send_body: bool):
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _send_file(self, file: Path, send_body: bool):
        content_type = {".html": "text/html; charset=utf-8", ".json": "application/json",
                        ".jsonl": "application/x-ndjson", ".csv": "text/csv; charset=utf-8",
                        ".xml": "application/xml"}.get(file.suffix, "application/octet-stream")
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(file.stat().st_size))
        self.end_headers()
        if send_body:
            with file.open("rb") as source:
                while chunk := source.read(CHUNK):
                    self.wfile.write(chunk)

    def _send_archive(self, send_body: bool):
        # Made as it is sent (no copy on disk, no size known beforehand): the
        # response ends when the connection closes, as HTTP/1.0 allows.
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/gzip")
        self.send_header("Content-Disposition", f'attachment; filename="{self.folder.name}.tar.gz"')
        self.end_headers()
        if send_body:
            with tarfile.open(fileobj=self.wfile, mode="w|gz") as archive:
                archive.add(self.folder, arcname=self.folder.name)

    def log_message(self, format, *args):  # http.server's signature
        print(f"loadkit serve: {self.address_string()} {format % args}", file=sys.stderr, flush=True)


def make_server(folder: Path, bind: str, port: int) -> ThreadingHTTPServer:
    handler = type("BoundResultsHandler", (ResultsHandler,), {"folder": folder})
    try:
        server = ThreadingHTTPServer((bind, port), handler)
    except OSError as error:
        raise UsageError(f"cannot listen on {bind}:{port}: {error.strerror or error}") from None
    server.daemon_threads = True
    return server


def run(args: argparse.Namespace) -> int:
    try:
        duration = parse_timespan(args.duration) if args.duration is not None else None
    except ArrivalError as error:
        raise UsageError(f"--for: {error}") from None
    if duration is not None and duration <= 0:
        raise UsageError(f"--for {args.duration!r}: must be longer than 0s")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: not a TCP port")
    folder = find_results_folder(Path(args.results))
    server = make_server(folder, args.bind, args.port)
    host, port = server.server_address[:2]
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, name="loadkit-serve", daemon=True)
    thread.start()
    until = f"for {args.duration}" if duration is not None else "until stopped"
    print(f"loadkit serve: serving {folder} on http://{host}:{port}/ {until}", flush=True)
    try:
        stop.wait(duration)
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.shutdown()
        server.server_close()
    print("loadkit serve: stopped", flush=True)
    return 0
