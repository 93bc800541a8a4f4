"""Faults on purpose: rejects, disconnects, delays, slow replies, greylisting.

A `FaultPlan` holds rules, each tied to one command: a verb (``MAIL``,
``RCPT``, ...), ``CONNECT`` (the greeting) or ``.`` (the end of the
message, after DATA or BDAT LAST). For a command with rules, the first
rule that fires among the *terminal* ones decides instead of the protocol:

reject      answer CODE (4xx or 5xx) and do not carry the command out
            (421 also closes the connection, as that code says);
            ``--reject rcpt:550:0.05`` fires for 5% of RCPT commands,
            smtp-sink's ``-f``/``-r`` always, with its own replies
disconnect  close the connection without a reply (smtp-sink ``-q``)
shutdown    answer 421 and close (smtp-sink ``-Q``)

and then the *slow* ones act on the reply the protocol gave:

delay       wait before replying: ``50ms``, or drawn from a distribution
            (see `parse_delay`)
drip        send the reply at that many bytes a second

A rejected CONNECT with a 5xx code leaves a session that answers 503 to
everything but QUIT (RFC 5321 3.1); with a 4xx code it is closed after the
reply. A rejected end of message is not counted as a message (LMTP: the
reply is repeated for each recipient).

Rates draw from one `random.Random` per rule, seeded from the plan's seed
and the rule's position: with a seed, the number of rejects among the first
N commands of a kind is the same on every run, however sessions interleave.

Greylisting (`Greylist`) is not a rule: the full session asks it at RCPT
(see `loadkit.sink._full`); its 450s are counted with the faults.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from typing import NamedTuple

from loadkit.errors import LoadkitError

COMMANDS = (
    "CONNECT", "HELO", "EHLO", "LHLO", "MAIL", "RCPT", "DATA", ".", "BDAT",
    "RSET", "NOOP", "QUIT", "VRFY", "HELP", "STARTTLS", "AUTH",
)
ALIASES = {"DATA-END": ".", "DOT": "."}
MAX_DELAY = 600.0  # seconds: a drawn delay is cut there

S421_CLOSING = b"421 4.3.0 Error: server closing connection\r\n"
S450_FAILED = b"450 4.3.0 Error: command failed\r\n"  # smtp-sink's -r reply
S450_GREYLISTED = b"450 4.7.1 Error: greylisted, try again later\r\n"
S500_FAILED = b"500 5.3.0 Error: command failed\r\n"  # smtp-sink's -f reply
S503_SEND_QUIT = b"503 5.5.1 Error: connection rejected, send QUIT\r\n"

_DURATION = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(us|µs|ms|s|m)?\Z")
_UNITS = {None: 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "m": 60.0}


class FaultError(LoadkitError, ValueError):
    """A fault specification that cannot be used; the message is one line for people."""


class SlowReply(NamedTuple):
    """A reply to send after `delay` seconds, at `rate` bytes a second (0: all at once)."""

    delay: float
    rate: int
    reply: bytes


def command_name(text: str) -> str:
    """``rcpt`` -> ``RCPT``, ``data-end`` -> ``.``; FaultError for anything else."""
    name = text.strip().upper()
    name = ALIASES.get(name, name)
    if name not in COMMANDS:
        raise FaultError(f"unknown command {text!r}: use one of {', '.join(c.lower() for c in COMMANDS)}, data-end")
    return name


def command_list(text: str) -> list[str]:
    """smtp-sink's ``-f mail,rcpt`` (commas or spaces) -> [``MAIL``, ``RCPT``]."""
    names = [command_name(word) for word in re.split(r"[\s,]+", text) if word]
    if not names:
        raise FaultError(f"no command in {text!r}")
    return names


def parse_duration(text: str) -> float:
    """``50ms``, ``1.5s``, ``200us``, ``2m``; a bare number is seconds (as smtp-sink's -w)."""
    match = _DURATION.match(text.strip())
    if not match:
        raise FaultError(f"bad duration {text!r}: use a number with us, ms, s or m, e.g. 50ms")
    return float(match.group(1)) * _UNITS[match.group(2)]


class Delay:
    """How long to wait: fixed, or drawn from a distribution.

    ``50ms``                 always 50 ms (``fixed:50ms`` too)
    ``uniform:A:B``          evenly between A and B
    ``exp:MEAN``             exponential with that mean
    ``lognormal:MEDIAN:GSD`` log-normal with that median and geometric
                             standard deviation GSD (a factor, at least 1):
                             about 68% of delays fall within MEDIAN/GSD ..
                             MEDIAN*GSD, 95% within MEDIAN/GSD² .. MEDIAN*GSD²
                             (``lognormal:10ms:3``: half under 10 ms, 1 in 6
                             over 30 ms, 1 in 100 over 128 ms)

    Every drawn delay is cut at MAX_DELAY (600 s).
    """

    def __init__(self, text: str):
        self.text = text
        parts = text.split(":")
        kind = parts[0].lower()
        try:
            if kind == "uniform" and len(parts) == 3:
                low, high = parse_duration(parts[1]), parse_duration(parts[2])
                if high < low:
                    raise FaultError(f"uniform delay {text!r}: the first bound must not exceed the second")
                self._draw = lambda rng: rng.uniform(low, high)
            elif kind in ("exp", "exponential") and len(parts) == 2:
                mean = parse_duration(parts[1])
                self._draw = (lambda rng: rng.expovariate(1.0 / mean)) if mean > 0 else (lambda rng: 0.0)
            elif kind == "lognormal" and len(parts) == 3:
                median = parse_duration(parts[1])
                spread = float(parts[2])
                if not spread >= 1.0 or median <= 0:
                    raise FaultError(
                        f"lognormal delay {text!r}: the median must be above 0 and the spread factor at least 1"
                    )
                mu, sigma = math.log(median), math.log(spread)
                self._draw = lambda rng: rng.lognormvariate(mu, sigma)
            elif kind == "fixed" and len(parts) == 2:
                seconds = parse_duration(parts[1])
                self._draw = lambda rng: seconds
            elif len(parts) == 1:
                seconds = parse_duration(parts[0])
                self._draw = lambda rng: seconds
            else:
                raise FaultError(
                    f"bad delay {text!r}: use DURATION, uniform:A:B, exp:MEAN or lognormal:MEDIAN:SPREAD"
                )
        except ValueError as error:
            raise FaultError(str(error) if isinstance(error, FaultError) else f"bad delay {text!r}") from None

    def draw(self, rng: random.Random) -> float:
        return min(max(self._draw(rng), 0.0), MAX_DELAY)

    def __repr__(self) -> str:
        return f"Delay({self.text!r})"


class Rule:
    """One fault on one command."""

    __slots__ = ("kind", "command", "reply", "rate", "delay", "drip", "rng")

    def __init__(self, kind: str, command: str, reply: bytes = b"", rate: float = 1.0,
                 delay: Delay | None = None, drip: int = 0):
        self.kind = kind
        self.command = command
        self.reply = reply
        self.rate = rate
        self.delay = delay
        self.drip = drip
        self.rng = random.Random()

    def fires(self) -> bool:
        return self.rate >= 1.0 or self.rng.random() < self.rate

    @property
    def label(self) -> str:
        """The command as the stats name it: ``rcpt``, ``connect``, ``.``."""
        return self.command.lower()


TERMINAL_KINDS = ("reject", "disconnect", "shutdown")


class FaultPlan:
    """The rules of one server, by command; `wrap_verbs` puts them in front of the protocol."""

    def __init__(self, seed: int | None = None):
        self.seed = seed
        self.rules: list[Rule] = []
        self._terminal: dict[str, list[Rule]] = {}
        self._slow: dict[str, list[Rule]] = {}

    def __bool__(self) -> bool:
        return bool(self.rules)

    # -- building -------------------------------------------------------------

    def add(self, rule: Rule) -> "FaultPlan":
        position = len(self.rules)
        rule.rng = random.Random(f"{self.seed}/{position}") if self.seed is not None else random.Random()
        self.rules.append(rule)
        table = self._terminal if rule.kind in TERMINAL_KINDS else self._slow
        table.setdefault(rule.command, []).append(rule)
        return self

    def reject(self, command: str, code: int, rate: float = 1.0) -> "FaultPlan":
        """Answer `code` (400-599) instead of carrying the command out, at `rate` (0-1)."""
        command = command_name(command)
        if not 400 <= code <= 599:
            raise FaultError(f"reject code {code} is not a 4xx or 5xx code")
        if not 0.0 <= rate <= 1.0:
            raise FaultError(f"reject rate {rate} is not between 0 and 1")
        label = "end of data" if command == "." else command
        reply = f"{code} {code // 100}.3.0 Error: {label} rejected (loadkit sink --reject)\r\n".encode()
        return self.add(Rule("reject", command, reply, rate))

    def hard_reject(self, command: str) -> "FaultPlan":
        return self.add(Rule("reject", command_name(command), S500_FAILED))

    def soft_reject(self, command: str) -> "FaultPlan":
        return self.add(Rule("reject", command_name(command), S450_FAILED))

    def disconnect(self, command: str) -> "FaultPlan":
        return self.add(Rule("disconnect", command_name(command)))

    def shutdown(self, command: str) -> "FaultPlan":
        return self.add(Rule("shutdown", command_name(command), S421_CLOSING))

    def delay(self, command: str, delay: Delay | str) -> "FaultPlan":
        return self.add(Rule("delay", command_name(command), delay=Delay(delay) if isinstance(delay, str) else delay))

    def drip(self, command: str, bytes_per_second: int) -> "FaultPlan":
        if bytes_per_second < 1:
            raise FaultError(f"drip rate {bytes_per_second} must be at least 1 byte a second")
        return self.add(Rule("drip", command_name(command), drip=bytes_per_second))

    # -- the option spellings ---------------------------------------------------

    def add_reject_spec(self, spec: str) -> "FaultPlan":
        """``CMD:CODE[:RATE]``, e.g. ``rcpt:550:0.05``, ``mail:451``, ``data-end:554``."""
        parts = spec.split(":")
        if len(parts) not in (2, 3):
            raise FaultError(f"bad --reject {spec!r}: use COMMAND:CODE[:RATE], e.g. rcpt:550:0.05")
        command, code = parts[0], parts[1]
        if not (len(code) == 3 and code.isdigit()):
            raise FaultError(f"bad --reject {spec!r}: the code must be three digits, 4xx or 5xx")
        rate = 1.0
        if len(parts) == 3:
            try:
                rate = float(parts[2])
            except ValueError:
                raise FaultError(f"bad --reject {spec!r}: the rate must be a number from 0 to 1") from None
        return self.reject(command, int(code), rate)

    def add_delay_spec(self, spec: str) -> "FaultPlan":
        """``CMD:DELAY``, e.g. ``data:50ms``, ``rcpt:lognormal:10ms:3`` (see `Delay`)."""
        command, colon, delay = spec.partition(":")
        if not colon or not delay:
            raise FaultError(f"bad --delay {spec!r}: use COMMAND:DELAY, e.g. data:50ms or rcpt:exp:20ms")
        return self.delay(command, Delay(delay))

    def add_drip_spec(self, spec: str) -> "FaultPlan":
        """``CMD:BYTES_PER_SECOND``, e.g. ``ehlo:20``."""
        command, colon, rate = spec.partition(":")
        if not colon or not rate.isdigit():
            raise FaultError(f"bad --drip {spec!r}: use COMMAND:BYTES_PER_SECOND, e.g. ehlo:20")
        return self.drip(command, int(rate))

    # -- acting -------------------------------------------------------------------

    def affects(self, command: str) -> bool:
        return command in self._terminal or command in self._slow

    def wrap_verbs(self, verbs: dict) -> dict:
        """A copy of a verb table where every verb with rules goes through `apply` first."""
        wrapped = dict(verbs)
        for command in set(self._terminal) | set(self._slow):
            verb = command.encode()
            handler = verbs.get(verb)
            if handler is not None:
                wrapped[verb] = self._wrapper(command, handler)
        return wrapped

    def _wrapper(self, command: str, handler: Callable) -> Callable:
        apply = self.apply

        def faulty(session, argument):
            return apply(command, session, handler, session, argument)

        faulty.__name__ = f"faulty_{command.lower()}"
        return faulty

    def apply(self, command: str, session, produce: Callable, *arguments):
        """The reply to `command`: a rule's, or ``produce(*arguments)`` possibly slowed down.

        A terminal rule that fires sets ``session.closing`` when it closes;
        `produce` is then not called at all.
        """
        stats = session.stats
        for rule in self._terminal.get(command, ()):
            if rule.fires():
                stats.count_fault(rule.kind, rule.label)
                if rule.kind != "reject" or rule.reply[:3] == b"421":  # 421 always means closing
                    session.closing = True
                elif command == "BDAT":  # the chunk follows the command whatever the answer
                    return session.refuse_chunk(arguments[-1], rule.reply)
                return rule.reply
        reply = produce(*arguments)
        slow = self._slow.get(command)
        if slow is None:
            return reply
        delay = 0.0
        rate = 0
        for rule in slow:
            stats.count_fault(rule.kind, rule.label)
            if rule.kind == "delay":
                delay += rule.delay.draw(rule.rng)
            else:
                rate = rule.drip
        return SlowReply(delay, rate, reply)


class Greylist:
    """First attempt of a (client address, sender, recipient) triplet: 450; later ones pass.

    With `delay` seconds, an attempt passes only that long after the first
    one. At most `max_entries` triplets are remembered (the oldest are
    forgotten first: about 200 bytes each).
    """

    def __init__(self, delay: float = 0.0, max_entries: int = 1_000_000):
        self.delay = delay
        self.max_entries = max_entries
        self._first_seen: dict[tuple, float] = {}

    def passes(self, triplet: tuple, now: float) -> bool:
        first = self._first_seen.get(triplet)
        if first is None:
            if len(self._first_seen) >= self.max_entries:
                del self._first_seen[next(iter(self._first_seen))]
            self._first_seen[triplet] = now
            return False
        return now - first >= self.delay
