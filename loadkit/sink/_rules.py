"""Recipient rules: answer RCPT as real receivers do, by recipient domain and local part.

``loadkit sink --rules FILE`` reads a small table, one rule a line::

    MATCH ACTION [ARGS]

    # comments and blank lines are skipped
    tempfail@*      defer                # 451 4.3.0, multi-line, every time
    permfail@*      bounce               # 550 5.1.1, multi-line (the sender gets a DSN)
    *@grey.test     greylist 30s         # first attempt of (client, sender, recipient): 450 4.7.1
    *@busy.test     ratelimit 100        # past 100 recipients a minute: 450 4.7.1
    *@*             accept

MATCH is ``LOCAL@DOMAIN`` with shell wildcards (``*``, ``?``) on either side,
or a bare ``DOMAIN`` (``*@DOMAIN``); it is compared without regard to case.
The first rule that matches a recipient decides; a recipient no rule
matches is accepted. Actions:

accept                 250, as without rules
defer [CODE]           a 4xx (default 451) with a Gmail-like multi-line text
bounce [CODE]          a 5xx (default 550) "5.1.1 no such user", multi-line
greylist [DELAY]       Postfix/postgrey's 450 4.7.1 for the first attempt of
                       each (client address, sender, recipient); later ones
                       pass once DELAY (default 0) has gone by
ratelimit N[/PERIOD]   accept N recipients per PERIOD (default 1m) for the
                       rule as a whole, then 450 4.7.1 until the period ends

The file is read once, into the settings: a mistake is one `RulesError`
line, ``FILE:LINE: ...``. Each rule counts what it refused and what it let
through; `SinkStats` writes them under ``rules`` keyed by the rule's text.
"""

from __future__ import annotations

import fnmatch
import re
import time

from loadkit.sink._errors import SinkError
from loadkit.sink._faults import FaultError, Greylist, parse_duration

RULES_HELP = """\
    MATCH ACTION [ARGS]
    MATCH: LOCAL@DOMAIN with * and ? wildcards, or a bare DOMAIN (*@DOMAIN)
    tempfail@*     defer [CODE]        451 4.3.0 (or CODE, 4xx), multi-line
    permfail@*     bounce [CODE]       550 5.1.1 (or CODE, 5xx), multi-line
    grey.test      greylist [DELAY]    450 4.7.1 for the first attempt of each
                                       (client, sender, recipient); later ones
                                       pass once DELAY has gone by
    busy.test      ratelimit N[/PERIOD]
                                       N recipients per PERIOD (default 1m),
                                       then 450 4.7.1 until the period ends
    *@*            accept              250 (also for recipients no rule matches)
    Counted per rule in the stats' rules (refused / passed); a bad line
    stops the sink with FILE:LINE: what is wrong.
"""

ACTIONS = ("accept", "defer", "bounce", "greylist", "ratelimit")

DEFER_TEXT = (
    "Mail server temporarily rejected message.",
    "Please try again later. (loadkit sink: defer rule)",
)
BOUNCE_TEXT = (
    "The email account that you tried to reach does not exist. Please try",
    "double-checking the recipient's email address for typos or",
    "unnecessary spaces. (loadkit sink: bounce rule)",
)
S450_GREYLISTED = (
    b"450-4.7.1 Recipient address rejected: Greylisted, see\r\n"
    b"450 4.7.1 http://postgrey.schweikert.ch/help/loadkit.html\r\n"
)
S450_RATE_LIMITED = (
    b"450-4.7.1 The user you are trying to contact is receiving mail at a rate that\r\n"
    b"450-4.7.1 prevents additional messages from being delivered. Please resend your\r\n"
    b"450 4.7.1 message at a later point. (loadkit sink: ratelimit rule)\r\n"
)

_RATE = re.compile(r"([0-9]+)(?:/(.+))?\Z")


class RulesError(SinkError):
    """A rules file that cannot be used: ``FILE:LINE: what is wrong``."""


def multiline(code: int, enhanced: str, lines: tuple[str, ...]) -> bytes:
    """One reply over several lines: ``451-4.3.0 ...`` then ``451 4.3.0 ...``."""
    out = [f"{code}-{enhanced} {text}" for text in lines[:-1]] + [f"{code} {enhanced} {lines[-1]}"]
    return ("\r\n".join(out) + "\r\n").encode()


class RecipientRule:
    """One line of the table: which recipients, and what they are answered."""

    __slots__ = ("text", "local", "domain", "_local", "_domain", "action", "reply", "greylist", "limit", "period",
                 "_window", "_taken", "refused", "passed")

    def __init__(self, text: str, match: str, action: str, reply: bytes = b"", greylist: Greylist | None = None,
                 limit: int = 0, period: float = 60.0):
        self.text = text
        local, _, domain = match.lower().rpartition("@")
        self.local = local or "*"
        self.domain = domain
        self._local = _matcher(self.local)
        self._domain = _matcher(domain)
        self.action = action
        self.reply = reply
        self.greylist = greylist
        self.limit = limit
        self.period = period
        self._window = -1
        self._taken = 0
        self.refused = 0
        self.passed = 0

    def matches(self, local: str, domain: str) -> bool:
        return (self._domain is None or self._domain(domain) is not None) and (
            self._local is None or self._local(local) is not None)

    def answer(self, triplet: tuple, now: float) -> bytes | None:
        """The refusal for this recipient, or None when it passes; counted either way."""
        reply = None
        action = self.action
        if action in ("defer", "bounce"):
            reply = self.reply
        elif action == "greylist":
            if not self.greylist.passes(triplet, now):
                reply = S450_GREYLISTED
        elif action == "ratelimit":
            window = int(now // self.period)
            if window != self._window:
                self._window, self._taken = window, 0
            if self._taken >= self.limit:
                reply = S450_RATE_LIMITED
            else:
                self._taken += 1
        if reply is None:
            self.passed += 1
        else:
            self.refused += 1
        return reply


def _matcher(pattern: str):
    """A compiled wildcard match (fnmatch's own call costs ~1 µs a time); None for ``*``, which matches all."""
    return None if pattern == "*" else re.compile(fnmatch.translate(pattern)).match


class RecipientRules:
    """The table of one sink, in file order; `answer` is asked at every accepted RCPT."""

    def __init__(self, rules: list[RecipientRule], source: str = "rules"):
        self.rules = rules
        self.source = source

    def __bool__(self) -> bool:
        return bool(self.rules)

    def answer(self, peer: str, sender: bytes | None, recipient: bytes | None, now: float | None = None) -> bytes | None:
        """The reply that refuses this recipient, or None to accept it."""
        if recipient is None:
            return None
        address = recipient.decode("utf-8", "replace").lower()
        local, _, domain = address.rpartition("@")
        for rule in self.rules:
            if rule.matches(local, domain):
                return rule.answer((peer, sender, recipient), time.monotonic() if now is None else now)
        return None

    def as_dict(self) -> dict[str, dict[str, int]]:
        """{rule text: {"refused": n, "passed": n}}, in file order."""
        return {rule.text: {"refused": rule.refused, "passed": rule.passed} for rule in self.rules}

    @classmethod
    def from_file(cls, path: str) -> "RecipientRules":
        try:
            with open(path, encoding="utf-8") as stream:
                text = stream.read()
        except OSError as error:
            raise RulesError(f"--rules {path}: {error.strerror or error}") from None
        except UnicodeDecodeError:
            raise RulesError(f"--rules {path}: not UTF-8 text") from None
        return cls.from_text(text, path)

    @classmethod
    def from_text(cls, text: str, source: str = "rules") -> "RecipientRules":
        rules = []
        for number, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            try:
                rules.append(parse_rule(line))
            except (RulesError, FaultError) as error:
                raise RulesError(f"{source}:{number}: {error}") from None
        if not rules:
            raise RulesError(f"{source}: no rules (one a line: MATCH ACTION [ARGS])")
        return cls(rules, source)


def parse_rule(line: str) -> RecipientRule:
    """``permfail@* bounce`` -> a `RecipientRule`; RulesError (no file name) for a mistake."""
    words = line.split()
    if len(words) < 2:
        raise RulesError(f"{line!r}: use MATCH ACTION [ARGS], e.g. permfail@* bounce")
    match, action, args = words[0], words[1].lower(), words[2:]
    if "@" not in match:
        match = "*@" + match
    local, _, domain = match.rpartition("@")
    if not domain or "@" in local:
        raise RulesError(f"bad match {match!r}: use LOCAL@DOMAIN with * wildcards, or a domain")
    text = " ".join(words)
    if action not in ACTIONS:
        raise RulesError(f"unknown action {action!r}: use one of {', '.join(ACTIONS)}")
    if action == "accept":
        if args:
            raise RulesError("accept takes no arguments")
        return RecipientRule(text, match, action)
    if action in ("defer", "bounce"):
        low = 4 if action == "defer" else 5
        code = 451 if action == "defer" else 550
        if len(args) > 1:
            raise RulesError(f"{action} takes at most a reply code")
        if args:
            if not (len(args[0]) == 3 and args[0].isdigit() and int(args[0]) // 100 == low):
                raise RulesError(f"{action} code {args[0]!r}: must be a {low}xx code")
            code = int(args[0])
        reply = (multiline(code, "4.3.0", DEFER_TEXT) if action == "defer"
                 else multiline(code, "5.1.1", BOUNCE_TEXT))
        return RecipientRule(text, match, action, reply)
    if action == "greylist":
        if len(args) > 1:
            raise RulesError("greylist takes at most a delay, e.g. greylist 30s")
        delay = parse_duration(args[0]) if args else 0.0
        return RecipientRule(text, match, action, greylist=Greylist(delay=delay))
    rate = _RATE.match(args[0]) if len(args) == 1 else None
    if rate is None or int(rate.group(1)) < 1:
        raise RulesError("ratelimit takes N[/PERIOD], at least 1 per period, e.g. ratelimit 100 or ratelimit 10/30s")
    period = parse_duration(rate.group(2)) if rate.group(2) else 60.0
    if not period > 0:
        raise RulesError("ratelimit period must be more than 0")
    return RecipientRule(text, match, action, limit=int(rate.group(1)), period=period)
