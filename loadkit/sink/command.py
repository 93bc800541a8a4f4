"""``loadkit sink``: accept and discard mail fast, like Postfix's smtp-sink.

    loadkit sink [options] [inet:][host]:port | smtps:[host]:port | unix:path [backlog]

Like smtp-sink:

-L             speak LMTP (LHLO; one end-of-data reply per recipient)
-c             show running counters on stderr (at most ten updates a second)
-M count       exit after answering that many messages
-h hostname    the name in the greeting and the HELO/EHLO reply
-t timeout     close a session silent for that many seconds (default 100)
-p -8 -e -E -a -N
               do not offer PIPELINING, 8BITMIME, ESMTP (EHLO is then an
               unknown command), ENHANCEDSTATUSCODES (replies lose their
               x.y.z codes), AUTH, DSN
-f / -r COMMANDS
               reject these commands (comma-separated) with smtp-sink's
               "500 5.3.0" / "450 4.3.0" replies; commands are connect, helo,
               ehlo, lhlo, mail, rcpt, data, . (or data-end: the end of the
               message), bdat, rset, noop, quit, vrfy, help, starttls, auth
-q / -Q COMMANDS
               after these commands, disconnect without a reply / say 421 and
               disconnect
-w seconds     wait that long before answering DATA (``--delay data:SECONDS``)

Beyond smtp-sink:

--size BYTES          the SIZE limit, for MAIL SIZE= and for the data (default
                      10240000; 0: none); over it: 552 5.3.4
--no-size --no-starttls --no-smtputf8 --no-chunking
                      do not offer those (long forms of the above too:
                      --no-pipelining --no-8bitmime --no-esmtp
                      --no-enhanced-status-codes --no-auth --no-dsn)
--greeting TEXT       the banner's text after the host name
--tls-cert / --tls-key FILE
                      the certificate for STARTTLS and implicit TLS; without
                      them the sink makes a self-signed one
--implicit-tls        TLS from the first byte (as does an smtps: endpoint)
--auth-users FILE     user:password lines; without it AUTH accepts everyone
--auth-mechanisms LIST
                      offered mechanisms: PLAIN, LOGIN, CRAM-MD5 (default PLAIN,LOGIN)
--auth-plaintext      offer AUTH before TLS too. By default AUTH is offered
                      after STARTTLS, and before it only when the sink listens
                      on a loopback address or a unix socket (every client
                      is then local), as a submission service trusting only
                      local clients would.
--reject CMD:CODE[:RATE]
                      answer CODE (4xx/5xx) instead, always or at RATE (0-1):
                      rcpt:550:0.05, mail:451, data-end:554, connect:554
--delay CMD:DELAY     wait before the reply: data:50ms, or drawn:
                      rcpt:uniform:5ms:20ms, rcpt:exp:10ms,
                      rcpt:lognormal:10ms:3 (median 10 ms; 3 is the geometric
                      standard deviation: 68% of delays within 3.3-30 ms)
--drip CMD:BYTES_PER_SECOND
                      send the reply that slowly
--greylist            the first RCPT of each (client address, sender,
                      recipient) gets 450 4.7.1, later ones pass
--greylist-delay SECONDS
                      ... only once that long after the first
--rules FILE          answer RCPT by recipient as real receivers do; one rule
                      a line (see RULES below)
--control HOST:PORT   a control port (HTTP, loopback unless told): GET /stats,
                      GET /faults, POST /faults with fault lines such as
                      ``reject rcpt:550:0.5`` (rejects from 0 to 50% mid-run);
                      each change is kept with its time in the stats'
                      ``changes`` (see `loadkit.sink._control`)
--seed N              rates draw from random numbers seeded with N: the same
                      counts on every run
--store DIR           keep each accepted message in DIR/new/ (a maildir; the
                      sink names the files) ...
--store-max N         ... at most N of them (the rest accepted, not kept)
--max-buffer BYTES    a stored message is held in memory until its end: one
                      session may hold that much of it (default 16 MiB),
--max-buffer-total BYTES
                      all sessions together that much (default 256 MiB);
                      a message past either is still read to its end, then
                      refused: 552 5.3.4 / 451 4.3.1 (counted in the stats'
                      store.over_buffer / store.buffers_full). Without
                      --store nothing is held: a session keeps at most a
                      command line (4 KiB) and 16 KiB of headers for the trace
--no-trace            do not read X-Loadkit-Trace headers (delivery delay,
                      duplicates); reading them costs about 2 µs of CPU per
                      5 KB message without a trace, 6 µs with one, against
                      some 45 µs the sink spends on a message in all
--trace-log PATH      append one line per traced message as it arrives:
                      RUN SOURCE SEQUENCE SENT_AT ARRIVAL (what end-to-end
                      runs read to find lost and duplicated mail)
--dkim-verify KEYFILE_OR_DIR
                      verify each accepted message's DKIM signature with the
                      public keys there (SELECTOR._domainkey.DOMAIN.txt or
                      .pem; no DNS) and count pass / fail / none by signing
                      domain (``dkim`` in the stats); costs CPU per message
--stats-json PATH     write the counters, address and duration there on exit

Every fault is counted in the stats (``faults``: kind -> command -> count),
with the replies sent by code, TLS and AUTH outcomes, the store's counts and
the trace's delay histogram and duplicates.

RULES (``--rules FILE``): one rule a line, ``MATCH ACTION [ARGS]``; the grammar and
the actions (defer, bounce, greylist, ratelimit, accept) are `loadkit.sink._rules`'s
``RULES_HELP``, also printed at the end of ``--help``.
A bare port binds 127.0.0.1. Port 0 binds a free port; the first line on
stdout always says where: ``loadkit sink: listening on smtp://127.0.0.1:PORT``.
SIGINT and SIGTERM end the sink cleanly (stats written, exit 0).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import gevent

from loadkit.errors import UsageError
from loadkit.sink._auth import MECHANISMS
from loadkit.sink._buffers import DEFAULT_MAX_BUFFER, DEFAULT_MAX_BUFFER_TOTAL
from loadkit.sink._errors import SinkError
from loadkit.sink._faults import FaultPlan, Greylist, command_list
from loadkit.sink._protocol import DEFAULT_CAPABILITIES, DEFAULT_MAX_SIZE
from loadkit.sink._rules import RULES_HELP
from loadkit.sink._server import SinkServer
from loadkit.sink._settings import DEFAULT_BACKLOG, DEFAULT_TIMEOUT, SinkSettings

COUNTER_INTERVAL = 0.1  # seconds between updates of the -c line

# (short option, long option, capability) of what can be turned off
CAPABILITY_SWITCHES = (
    ("-p", "--no-pipelining", "PIPELINING"),
    ("-8", "--no-8bitmime", "8BITMIME"),
    ("-E", "--no-enhanced-status-codes", "ENHANCEDSTATUSCODES"),
    ("-a", "--no-auth", "AUTH"),
    ("-N", "--no-dsn", "DSN"),
    (None, "--no-size", "SIZE"),
    (None, "--no-starttls", "STARTTLS"),
    (None, "--no-smtputf8", "SMTPUTF8"),
    (None, "--no-chunking", "CHUNKING"),
)


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise ValueError(text)
    return value


_seconds.__name__ = "number of seconds"


def add_arguments(parser) -> None:
    # smtp-sink spells the greeting name -h; help stays reachable as --help.
    parser.conflict_handler = "resolve"
    parser._optionals.conflict_handler = "resolve"
    add = parser.add_argument
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "rules file (--rules FILE), one rule a line, # comments; the first match decides:\n" + RULES_HELP
    add("-L", dest="lmtp", action="store_true", help="speak LMTP instead of SMTP")
    add("-c", dest="counters", action="store_true", help="show running counters on stderr")
    add("-M", dest="max_messages", type=int, metavar="COUNT", help="exit after answering COUNT messages")
    add("-h", dest="hostname", default="loadkit-sink", metavar="HOSTNAME",
        help="the name in the greeting and HELO/EHLO reply (default: loadkit-sink)")
    add("-t", dest="timeout", type=float, default=DEFAULT_TIMEOUT,
        metavar="SECONDS", help="close sessions silent that long (default: 100)")
    add("--stats-json", metavar="PATH",
        help="write the counters (messages, replies, faults, trace, ...), address and duration there on exit")

    group = parser.add_argument_group("capabilities (all offered unless turned off)")
    for short, long, capability in CAPABILITY_SWITCHES:
        names = [short, long] if short else [long]
        group.add_argument(*names, dest="without", action="append_const", const=capability,
                           help=f"do not offer {capability}")
    group.add_argument("-e", "--no-esmtp", dest="no_esmtp", action="store_true",
                       help="no ESMTP: EHLO is an unknown command")
    group.add_argument("--size", type=int, default=DEFAULT_MAX_SIZE, metavar="BYTES",
                       help=f"message size limit, 0 for none (default: {DEFAULT_MAX_SIZE})")
    group.add_argument("--greeting", metavar="TEXT", help="the banner's text after the host name")

    group = parser.add_argument_group("TLS and AUTH")
    group.add_argument("--tls-cert", metavar="FILE", help="PEM certificate (default: a self-signed one made at start)")
    group.add_argument("--tls-key", metavar="FILE", help="PEM private key, if not in --tls-cert")
    group.add_argument("--implicit-tls", action="store_true", help="TLS from the first byte (smtps)")
    group.add_argument("--auth-users", metavar="FILE", help="user:password lines (default: accept everyone)")
    group.add_argument("--auth-mechanisms", metavar="LIST", default="PLAIN,LOGIN",
                       help=f"offered mechanisms, from {','.join(MECHANISMS)} (default: PLAIN,LOGIN)")
    group.add_argument("--auth-plaintext", action="store_true",
                       help="offer AUTH before TLS even when not listening on loopback")

    group = parser.add_argument_group("faults on purpose")
    group.add_argument("-f", dest="hard_reject", action="append", default=[], metavar="COMMANDS",
                       help="reject these commands with 500 5.3.0")
    group.add_argument("-r", dest="soft_reject", action="append", default=[], metavar="COMMANDS",
                       help="reject these commands with 450 4.3.0")
    group.add_argument("-q", dest="disconnect", action="append", default=[], metavar="COMMANDS",
                       help="disconnect without a reply after these commands")
    group.add_argument("-Q", dest="shutdown", action="append", default=[], metavar="COMMANDS",
                       help="reply 421 and disconnect after these commands")
    group.add_argument("-w", dest="data_delay", type=_seconds, metavar="SECONDS",
                       help="wait that long before answering DATA")
    group.add_argument("--reject", action="append", default=[], metavar="CMD:CODE[:RATE]",
                       help="answer CODE instead, always or at RATE (0-1), e.g. rcpt:550:0.05")
    group.add_argument("--delay", action="append", default=[], metavar="CMD:DELAY",
                       help="wait before replying: data:50ms, rcpt:uniform:5ms:20ms, rcpt:exp:10ms, "
                            "rcpt:lognormal:10ms:3")
    group.add_argument("--drip", action="append", default=[], metavar="CMD:BYTES_PER_SECOND",
                       help="send the reply that slowly, e.g. ehlo:20")
    group.add_argument("--greylist", action="store_true",
                       help="450 4.7.1 for the first RCPT of each (client, sender, recipient)")
    group.add_argument("--greylist-delay", type=_seconds, metavar="SECONDS",
                       help="greylisted triplets pass only that long after the first attempt")
    group.add_argument("--rules", metavar="FILE",
                       help="answer RCPT by recipient, one rule a line: MATCH ACTION [ARGS] "
                            "(accept, defer, bounce, greylist [DELAY], ratelimit N[/PERIOD]), e.g. permfail@* bounce")
    group.add_argument("--control", metavar="HOST:PORT",
                       help="a control port (HTTP): GET /stats, GET /faults, POST /faults "
                            "with lines like 'reject rcpt:550:0.5' to change the faults mid-run")
    group.add_argument("--seed", type=int, metavar="N", help="seed the random rates: the same counts every run")

    group = parser.add_argument_group("what is kept of the messages")
    group.add_argument("--store", metavar="DIR", help="keep each accepted message as a file in DIR/new/")
    group.add_argument("--store-max", type=int, metavar="N", help="keep at most N messages")
    group.add_argument("--max-buffer", type=int, default=DEFAULT_MAX_BUFFER, metavar="BYTES",
                       help="bytes of a stored message one session may hold in memory until its end; "
                            "past it: 552 (default: 16 MiB). Without --store nothing is held")
    group.add_argument("--max-buffer-total", type=int, default=DEFAULT_MAX_BUFFER_TOTAL, metavar="BYTES",
                       help="... all sessions together; past it: 451 (default: 256 MiB)")
    group.add_argument("--no-trace", dest="trace", action="store_false",
                       help="do not read X-Loadkit-Trace headers (delivery delay, duplicates)")
    group.add_argument("--trace-log", metavar="PATH",
                       help="append RUN SOURCE SEQUENCE SENT_AT ARRIVAL for each traced message as it arrives")
    group.add_argument("--dkim-verify", metavar="KEYFILE_OR_DIR",
                       help="verify each message's DKIM signature with these public keys; count pass/fail/none")

    add("endpoint", metavar="[inet:][host]:port | smtps:[host]:port | unix:path",
        help="where to listen; a bare port binds 127.0.0.1")
    add("backlog", nargs="?", type=int, default=DEFAULT_BACKLOG,
        help=f"listen queue length (default: {DEFAULT_BACKLOG})")


def fault_plan(args) -> FaultPlan | None:
    """The faults the options ask for, in the order given by kind; None when there are none."""
    plan = FaultPlan(seed=args.seed)
    for text in args.hard_reject:
        for command in command_list(text):
            plan.hard_reject(command)
    for text in args.soft_reject:
        for command in command_list(text):
            plan.soft_reject(command)
    for spec in args.reject:
        plan.add_reject_spec(spec)
    for text in args.disconnect:
        for command in command_list(text):
            plan.disconnect(command)
    for text in args.shutdown:
        for command in command_list(text):
            plan.shutdown(command)
    if args.data_delay is not None:
        plan.delay("data", f"{args.data_delay:.6f}s")
    for spec in args.delay:
        plan.add_delay_spec(spec)
    for spec in args.drip:
        plan.add_drip_spec(spec)
    return plan or None


def settings_from_args(args) -> SinkSettings:
    """The `SinkSettings` the options ask for (SinkError for a mistake, checked there)."""
    if args.greylist_delay is not None and not args.greylist:
        raise UsageError("--greylist-delay needs --greylist")
    endpoint = args.endpoint
    implicit_tls = args.implicit_tls
    if endpoint.startswith("smtps:"):
        endpoint = endpoint[len("smtps:"):]
        implicit_tls = True
    without = set(args.without or ())
    capabilities = tuple(name for name in DEFAULT_CAPABILITIES if name not in without)
    if implicit_tls:
        capabilities = tuple(name for name in capabilities if name != "STARTTLS")
    return SinkSettings(
        endpoint, lmtp=args.lmtp, hostname=args.hostname, max_messages=args.max_messages,
        timeout=args.timeout, backlog=args.backlog, capabilities=capabilities, max_size=args.size,
        esmtp=not args.no_esmtp, greeting=args.greeting,
        tls_cert=args.tls_cert, tls_key=args.tls_key, implicit_tls=implicit_tls,
        auth_users=args.auth_users,
        auth_mechanisms=tuple(word for word in args.auth_mechanisms.replace(",", " ").split() if word),
        auth_plaintext=True if args.auth_plaintext else None,
        faults=fault_plan(args), greylist=Greylist(delay=args.greylist_delay or 0.0) if args.greylist else None,
        store=args.store, store_max=args.store_max, trace=args.trace, trace_log=args.trace_log,
        max_buffer=args.max_buffer, max_buffer_total=args.max_buffer_total,
        dkim_verify=args.dkim_verify, rules=args.rules, control=args.control,
    )


def run(args) -> int:
    if args.stats_json:
        _check_writable(args.stats_json)
    server = SinkServer(settings_from_args(args))
    if server.tls_problem:
        print(f"loadkit sink: STARTTLS not offered: {server.tls_problem}", file=sys.stderr, flush=True)
    server.start(in_thread=False)
    # Before the line that says it is ready: a supervisor may stop it the moment it reads that line.
    for signum in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(signum, server.stop)
    print(f"loadkit sink: listening on {server.url}", flush=True)
    if server.control is not None:
        print(f"loadkit sink: control on {server.control.url}", flush=True)
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
    """Fail now, not after a long run, when the stats file cannot be written.

    Leaves no trace: an existing file is opened for appending and left as it
    was; a new one is made and removed again (an empty stats file left behind
    would read as lost counters).
    """
    try:
        if os.path.exists(path):
            with open(path, "a"):
                pass
        else:
            with open(path, "x"):
                pass
            os.unlink(path)
    except OSError as error:
        raise UsageError(f"cannot write --stats-json {path}: {error.strerror or error}") from None


def _write_stats(path: str, server: SinkServer) -> None:
    """Write the counters whole or not at all; when not, they go into the error line instead."""
    from loadkit.results import ResultsError, write_sink_stats

    try:
        write_sink_stats(path, server.stats_record())
    except ResultsError as error:
        kept = "the previous file is left as it was" if os.path.exists(path) else "no file written"
        raise SinkError(f"--stats-json: {error} ({kept}); the counters: {server.stats.summary()}") from None
