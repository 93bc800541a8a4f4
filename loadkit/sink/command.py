"""``loadkit sink``: accept and discard mail fast, like Postfix's smtp-sink.

    loadkit sink [-L] [-c] [-M count] [-h hostname] [-t timeout]
                 [--stats-json PATH] [inet:][host]:port | unix:path [backlog]

-L             speak LMTP (LHLO; one end-of-data reply per recipient)
-c             show running counters on stderr (at most ten updates a second)
-M count       exit after answering that many messages
-h hostname    the name in the greeting and the HELO/EHLO reply
-t timeout     close a session silent for that many seconds (default 100)
--stats-json   write the counters, address and duration there on exit

A bare port binds 127.0.0.1. Port 0 binds a free port; the first line on
stdout always says where: ``loadkit sink: listening on smtp://127.0.0.1:PORT``.
SIGINT and SIGTERM end the sink cleanly (stats written, exit 0).
"""

from __future__ import annotations

import json
import os
import signal
import sys

import gevent

from loadkit.cli import CommandError
from loadkit.sink._server import DEFAULT_BACKLOG, DEFAULT_TIMEOUT, SinkError, SinkServer
from loadkit.targets import TargetError, parse_listen

COUNTER_INTERVAL = 0.1  # seconds between updates of the -c line


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) <= 0:
        raise ValueError(text)
    return int(text)


_positive_int.__name__ = "positive integer"  # argparse names the type in its error


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError(text)
    return value


_positive_float.__name__ = "positive number"


def add_arguments(parser) -> None:
    # smtp-sink spells the greeting name -h; help stays reachable as --help.
    parser.conflict_handler = "resolve"
    parser._optionals.conflict_handler = "resolve"
    parser.add_argument("-L", dest="lmtp", action="store_true", help="speak LMTP instead of SMTP")
    parser.add_argument("-c", dest="counters", action="store_true",
                        help="show running counters on stderr")
    parser.add_argument("-M", dest="max_messages", type=_positive_int, metavar="COUNT",
                        help="exit after answering COUNT messages")
    parser.add_argument("-h", dest="hostname", default="loadkit-sink", metavar="HOSTNAME",
                        help="the name in the greeting and HELO/EHLO reply (default: loadkit-sink)")
    parser.add_argument("-t", dest="timeout", type=_positive_float, default=DEFAULT_TIMEOUT,
                        metavar="SECONDS", help="close sessions silent that long (default: 100)")
    parser.add_argument("--stats-json", metavar="PATH",
                        help="write sessions, messages, recipients, bytes, address and duration there on exit")
    parser.add_argument("endpoint", metavar="[inet:][host]:port | unix:path",
                        help="where to listen; a bare port binds 127.0.0.1")
    parser.add_argument("backlog", nargs="?", type=_positive_int, default=DEFAULT_BACKLOG,
                        help=f"listen queue length (default: {DEFAULT_BACKLOG})")


def run(args) -> int:
    protocol = "lmtp" if args.lmtp else "smtp"
    try:
        target = parse_listen(args.endpoint, protocol)
    except TargetError as error:
        raise CommandError(str(error)) from None
    if args.stats_json:
        _check_writable(args.stats_json)
    server = SinkServer(
        target, hostname=args.hostname, max_messages=args.max_messages,
        timeout=args.timeout, backlog=args.backlog,
    )
    try:
        server.start(in_thread=False)
    except SinkError as error:
        raise CommandError(str(error)) from None
    print(f"loadkit sink: listening on {server.url}", flush=True)
    for signum in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(signum, server.stop)
    counters = gevent.spawn(_show_counters, server) if args.counters else None
    try:
        server.serve_forever()
    finally:
        if counters is not None:
            counters.kill()
            print("\r" + server.stats.summary(), file=sys.stderr, flush=True)
    if args.stats_json:
        _write_stats(args.stats_json, server)
    return 0


def _show_counters(server: SinkServer) -> None:
    last = None
    while True:
        line = server.stats.summary()
        if line != last:
            sys.stderr.write("\r" + line)
            sys.stderr.flush()
            last = line
        gevent.sleep(COUNTER_INTERVAL)


def _check_writable(path: str) -> None:
    """Fail now, not after a long run, when the stats file cannot be written."""
    try:
        with open(path, "a"):
            pass
    except OSError as error:
        raise CommandError(f"cannot write --stats-json {path}: {error.strerror or error}") from None


def _write_stats(path: str, server: SinkServer) -> None:
    record = {"address": server.url, "protocol": server.target.protocol, **server.stats.as_dict()}
    temporary = f"{path}.tmp{os.getpid()}"
    try:
        with open(temporary, "w") as stream:
            json.dump(record, stream, indent=2)
            stream.write("\n")
        os.replace(temporary, path)
    except OSError as error:
        raise CommandError(f"cannot write --stats-json {path}: {error.strerror or error}") from None
