"""The control port: change a running sink's faults, read its counters, over tiny HTTP.

``loadkit sink --control 127.0.0.1:0`` listens there (loopback unless
another address is given) and answers::

    GET  /stats    the counters, as --stats-json writes them
    GET  /faults   {"faults": [the lines in force], "changes": [...]}
    POST /faults   the body, one fault a line, replaces the faults set here
                   before (those of the command line stay); an empty body
                   or ``none`` removes them

A fault line is an option of ``loadkit sink`` without its dashes::

    reject rcpt:550:0.5        delay data:50ms        drip ehlo:20
    disconnect rcpt            shutdown mail

so rejects can go from 0 to 50% mid-run: ``curl --data 'reject
rcpt:550:0.5' http://127.0.0.1:PORT/faults``. A bad line is answered 400
with one line saying why, and nothing changes. Each change is appended to
`SinkStats.changes` with its wall-clock time.

The sink runs apart from Locust and knows no results folder, so the side that
makes a change records it there: `change_faults` posts the lines, and a
locustfile (on a local runner or the master) adds the answer to its run's
events, which the report marks on its time charts::

    change = change_faults(control_url, "delay data:50ms")
    record_event(environment, SINK_CHANGED, change["what"])   # loadkit.metrics.plugin, loadkit.results._events

With a control port every command goes through the fault plan (`LiveFaults`)
and the sessions use the full loop: a sink that may change costs a little
more per command than one that cannot.
"""

from __future__ import annotations

import json
import socket as _socket
import time
import urllib.error
import urllib.request

from loadkit.sink._errors import SinkError
from loadkit.sink._faults import FaultError, FaultPlan

MAX_BODY = 65536  # bytes of a POST body read at most
CLIENT_TIMEOUT = 5.0  # seconds `change_faults` waits for the sink's answer

_SPECS = {
    "reject": FaultPlan.add_reject_spec,
    "delay": FaultPlan.add_delay_spec,
    "drip": FaultPlan.add_drip_spec,
    "disconnect": FaultPlan.disconnect,
    "shutdown": FaultPlan.shutdown,
}


class LiveFaults(FaultPlan):
    """A fault plan that can change while sessions run: the command line's rules, then the control port's."""

    def __init__(self, base: FaultPlan | None = None, seed: int | None = None):
        super().__init__(seed=base.seed if base is not None else seed)
        for rule in base.rules if base is not None else ():
            self.add(rule)
        self._base = (list(self.rules), _copy(self._terminal), _copy(self._slow))
        self.lines: list[str] = []

    def __bool__(self) -> bool:
        return True  # even empty: the verbs must go through it, since rules may come

    def affects(self, command: str) -> bool:
        return True

    def wrap_verbs(self, verbs: dict) -> dict:
        return {verb: self._wrapper(verb.decode("ascii"), handler) for verb, handler in verbs.items()}

    def replace(self, lines: list[str]) -> None:
        """Put these fault lines in force in place of the last ones; FaultError, and no change, for a bad one."""
        rules, terminal, slow = self._base
        scratch = FaultPlan(seed=self.seed)
        scratch.rules, scratch._terminal, scratch._slow = list(rules), _copy(terminal), _copy(slow)
        for line in lines:
            kind, _, spec = line.strip().partition(" ")
            add = _SPECS.get(kind.lower())
            if add is None or not spec.strip():
                raise FaultError(f"bad fault {line!r}: use reject|delay|drip|disconnect|shutdown SPEC, "
                                 "e.g. reject rcpt:550:0.5")
            add(scratch, spec.strip())
        # one switch, between two commands: sessions read the tables at each command
        self.rules, self._terminal, self._slow = scratch.rules, scratch._terminal, scratch._slow
        self.lines = [" ".join(line.split()) for line in lines]


def _copy(table: dict) -> dict:
    return {command: list(rules) for command, rules in table.items()}


def fault_lines(text: str) -> list[str]:
    """A POST body -> its fault lines (blank lines, comments and ``none`` dropped)."""
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    return [line for line in lines if line and line.lower() != "none"]


def bind_control(address: str) -> _socket.socket:
    """A listening socket at ``HOST:PORT`` (port 0: a free one); SinkError when it cannot be had."""
    host, _, port = address.rpartition(":")
    try:
        infos = _socket.getaddrinfo(host, int(port), type=_socket.SOCK_STREAM)
        family, _, _, _, where = infos[0]
        sock = _socket.socket(family, _socket.SOCK_STREAM)
        try:
            sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
            sock.bind(where)
            sock.listen(16)
        except OSError:
            sock.close()
            raise
    except OSError as error:
        raise SinkError(f"cannot listen on --control {address}: {error.strerror or error}") from None
    return sock


def change_faults(control_url: str, body: str, timeout: float = CLIENT_TIMEOUT) -> dict:
    """POST `body` (fault lines) to a sink's control port at `control_url`; the sink's change record
    ``{"time": epoch seconds, "what": "faults: ..."}``. SinkError, in one line, when the sink refuses
    a line (it then changed nothing) or cannot be reached."""
    request = urllib.request.Request(control_url.rstrip("/") + "/faults", data=body.encode("utf-8"), method="POST",
                                     headers={"Content-Type": "text/plain; charset=utf-8"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())["change"]
    except urllib.error.HTTPError as error:
        said = error.read().decode("utf-8", "replace").strip()
        raise SinkError(f"the sink at {control_url} refused the change: {said or error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", None) or error
        raise SinkError(f"cannot reach the sink's control port {control_url}: {reason}") from None
    except (ValueError, KeyError, TypeError):
        raise SinkError(f"{control_url} answered, but not as a sink's control port does") from None


class ControlServer:
    """The control port of one `SinkServer`: bound at once, served by `serve` in the sink's hub."""

    def __init__(self, address: str, faults: LiveFaults, stats_record):
        self.faults = faults
        self._stats_record = stats_record  # () -> the counters as --stats-json writes them
        self._sock = bind_control(address)
        self.address = self._sock.getsockname()[:2]
        self._server = None

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def serve(self, stats_of) -> None:
        """Start answering in the calling hub; `stats_of()` gives the live `SinkStats`."""
        from gevent import pywsgi
        from gevent import socket as gevent_socket

        self._stats_of = stats_of
        listener = gevent_socket.socket(fileno=self._sock.detach())
        self._server = pywsgi.WSGIServer(listener, self.application, log=None, error_log=None)
        self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(timeout=1)
            self._server = None
        elif self._sock.fileno() >= 0:
            self._sock.close()

    def change(self, body: str) -> dict:
        """Apply a POST /faults body; FaultError when a line is bad (nothing changed then)."""
        lines = fault_lines(body)
        self.faults.replace(lines)
        record = {"time": round(time.time(), 6), "what": "faults: " + ("; ".join(self.faults.lines) or "none")}
        self._stats_of().changes.append(record)
        return record

    def application(self, environ, start_response):
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        if path == "/stats" and method == "GET":
            return _json(start_response, "200 OK", self._stats_record())
        if path == "/faults" and method == "GET":
            return _json(start_response, "200 OK",
                         {"faults": self.faults.lines, "changes": list(self._stats_of().changes)})
        if path == "/faults" and method in ("POST", "PUT"):
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_BODY:
                return _text(start_response, "400 Bad Request", f"the body must be 0 to {MAX_BODY} bytes")
            try:
                body = environ["wsgi.input"].read(length).decode("utf-8")
                change = self.change(body)
            except UnicodeDecodeError:
                return _text(start_response, "400 Bad Request", "the body must be UTF-8 text")
            except FaultError as error:
                return _text(start_response, "400 Bad Request", str(error))
            return _json(start_response, "200 OK", {"faults": self.faults.lines, "change": change})
        if path in ("/stats", "/faults"):
            return _text(start_response, "405 Method Not Allowed", f"{method} {path}: use GET (or POST /faults)")
        return _text(start_response, "404 Not Found", "use GET /stats, GET /faults or POST /faults")


def _json(start_response, status: str, value) -> list[bytes]:
    body = json.dumps(value).encode() + b"\n"
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def _text(start_response, status: str, line: str) -> list[bytes]:
    body = line.encode() + b"\n"
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))])
    return [body]
