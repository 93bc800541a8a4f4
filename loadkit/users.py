"""Locust users that send mail: `SmtpUser` and `LmtpUser`, and `TracedSmtpUser` for end-to-end runs.

Thin by design: the protocol lives in `loadkit.smtp`, the messages in
`loadkit.messages`; a user wires them to Locust's request event.

One request event per transaction: request_type ``SMTP``/``LMTP``, name =
the task's label, response_time = the whole transaction in ms, from the
first byte of work for this message (the connection, when this message had
to open one) to the end-of-data reply (and the QUIT reply, when this was the
connection's last message). The phase times go into the event's
``context["phases"]``; they never add request entries, so the request count
is the message count.

With ``--rate`` (open model, `loadkit.open_model_locust`) the users are the
session pool: each message starts at its intended time, response_time is the
corrected latency (done - intended) and the phases gain ``service`` (done -
sent, the closed model's response_time) and ``lag`` (sent - intended).

A failure's exception reprs as ``550 5.1.1 at RCPT`` / ``timeout at
BANNER``, so Locust's failure table groups by reply code and phase.
"""

from __future__ import annotations

import csv
import logging
import sys
from itertools import count, cycle
from time import perf_counter, time

import gevent
from locust import User, events
from locust.exception import StopUser
from locust.runners import WorkerRunner
from locust.stats import CSV_STATS_INTERVAL_SEC

import loadkit.plugin  # noqa: F401  (loadkit's options and listeners on the locust command)
from loadkit.e2e.plugin import remember_accepted
from loadkit.errors import LoadkitError
from loadkit.loop_clock import refresh_loop_clock
from loadkit.messages import MessageFactory
from loadkit.open_model_locust import OpenModelSession
from loadkit.phases import PHASE_SUFFIX
from loadkit.smtp import SmtpClient, SMTPError, SMTPTransportError
from loadkit.urls import Target, TargetError, parse_url

log = logging.getLogger(__name__)

# Shared by every user of a process: building a Faker pool per user would be slow,
# and -N numbers must not repeat across users.
_factories: dict[tuple, MessageFactory] = {}
_recipient_numbers = count(1)
_accounts: dict[str, "cycle"] = {}


class SmtpUser(OpenModelSession, User):
    """A Locust user that sends mail over SMTP. Subclass it and add tasks that call `send()`."""

    abstract = True
    protocol = "smtp"

    messages_per_connection: int = 1
    """Messages sent over one connection before QUIT; 0 keeps the connection for the user's life."""
    recipients_per_message: int = 1
    """RCPT TO count per transaction (more than 1 numbers them, like smtp-source -r)."""
    payload_size: int = 5120
    """Exact body length in bytes, headers not included (smtp-source -l)."""
    mail_from: str = "loadkit@loadkit.test"
    """Envelope sender."""
    rcpt_to: str = "user@loadkit.test"
    """Envelope recipient (the base address when recipients are numbered)."""
    numbered_recipients: bool = False
    """Prefix every recipient with a number that never repeats in this process (smtp-source -N)."""
    helo_name: str = "loadkit.test"
    """Name given in EHLO/HELO/LHLO."""
    subject: str | None = None
    """Fixed Subject; None makes one per pooled message."""
    connect_timeout: float = 10.0
    """Seconds allowed to open a connection."""
    network_timeout: float = 30.0
    """Seconds allowed for each reply."""
    pipelining: bool = True
    """Use PIPELINING when the server offers it."""
    message_pool_size: int = 32
    """Distinct generated messages to rotate through."""
    seed: int | None = None
    """Seed of the message pool, for runs that must send the same content."""
    mail_profile: str | None = None
    """Sizes, MIME kinds, recipients and domains, e.g. "size=mix:realistic mime=attachments:0.2,html:0.3
    recipients=1:80,2:15,5:5 domains=example.com:60,*:40" (see loadkit.messages); None: payload_size, plain text."""
    starttls: bool = False
    """Require STARTTLS (implied by submission:// hosts; smtps:// hosts use implicit TLS)."""
    tls_verify: bool = True
    """Verify the server's certificate and name; False for test targets with self-signed ones."""
    username: str | None = None
    """AUTH user (a user:pass@ in the host URL or `accounts_csv` take precedence)."""
    password: str | None = None
    """AUTH password."""
    accounts_csv: str | None = None
    """A CSV file of username,password rows shared out among the users, round robin."""
    auth_mechanism: str | None = None
    """PLAIN, LOGIN or CRAM-MD5; None picks the first the server offers, in that order."""
    chunking: bool = False
    """Send with BDAT instead of DATA when the server offers CHUNKING."""
    declare_size: bool = True
    """Declare each message's size on MAIL (SIZE=) when the server offers SIZE."""
    dsn_notify: str | None = None
    """DSN NOTIFY= on every RCPT, e.g. "SUCCESS,FAILURE"; the server must offer DSN."""
    dsn_ret: str | None = None
    """DSN RET= on MAIL: "HDRS" or "FULL"."""
    dkim_domain: str | None = None
    """DKIM-sign every message as this domain (needs dkimpy: the `dkim` extra); None: no signature."""
    dkim_selector: str = "loadkit"
    """DKIM selector (the key's TXT record lives at SELECTOR._domainkey.DOMAIN)."""
    dkim_key: str | None = None
    """PEM file of the DKIM private key; None generates one per process (its TXT record is logged)."""
    phase_stats: bool = False
    """Also fire one entry per phase (`loadkit.phases`) under request type SMTP-phase (LMTP-phase), so
    Locust's UI and CSV show the time of connect, tls, banner, helo, auth, rset, envelope (or mail, rcpt
    and data without pipelining), end-of-data and quit. Those entries are phase times, not messages:
    count messages on the SMTP/LMTP rows only."""

    def __init__(self, environment):
        super().__init__(environment)
        self.target: Target | None = None
        username, password = self.username, self.password
        try:
            self.target = target_for(type(self), environment.host or self.host)
            if self.accounts_csv:
                username, password = next_account(self.accounts_csv)
            self.messages = message_factory_for(type(self))
        except (TargetError, SetupError):
            self.target = None
            return  # reported once by the start-up checks; on_start stops this user
        self.client = SmtpClient(
            self.target,
            helo_name=self.helo_name,
            connect_timeout=self.connect_timeout,
            timeout=self.network_timeout,
            pipelining=self.pipelining,
            starttls=self.starttls,
            tls_verify=self.tls_verify,
            username=username if self.target.username is None else None,
            password=password if self.target.username is None else None,
            auth_mechanism=self.auth_mechanism,
            chunking=self.chunking,
            declare_size=self.declare_size,
            dsn_notify=self.dsn_notify,
            dsn_ret=self.dsn_ret,
        )
        self._fixed_recipients = _numbered(self.rcpt_to, range(1, self.recipients_per_message + 1)) \
            if self.recipients_per_message > 1 else [self.rcpt_to]
        self._sent_on_connection = 0

    def on_start(self):
        if self.target is None:
            raise StopUser()
        self.join_open_model()  # with --rate: wait for this user's first arrival

    def on_stop(self):
        self.leave_open_model()
        if self.target is not None:
            self.client.quit()

    def recipients(self) -> list[str]:
        if self.messages.draws_recipients:  # a mail profile's recipients= and domains=
            return self.messages.recipients()
        if self.numbered_recipients:
            return _numbered(self.rcpt_to, (next(_recipient_numbers) for _ in range(self.recipients_per_message)))
        return self._fixed_recipients

    def send(self, name: str = "send", recipients: list[str] | None = None, message: bytes | None = None):
        """Send one message and fire one request event; returns the Delivery, or None on failure."""
        client = self.client
        timings: dict[str, float] = {}
        self._sent_on_connection += 1
        last = self.messages_per_connection and self._sent_on_connection >= self.messages_per_connection
        data = self.messages.build() if message is None else message
        delivery = error = None
        intended, self.intended = self.intended, None  # an arrival is one message; more in its task are not timed from it
        if intended is not None:
            started_at = time()
        start = perf_counter()
        try:
            delivery = client.send(self.mail_from, recipients or self.recipients(), data, timings, quit=bool(last),
                                   as_is=message is None and self.messages.ready_for_data)
            if delivery.errors:
                error = delivery.errors[0]
        except SMTPError as failure:
            error = failure
            if isinstance(failure, SMTPTransportError):
                client.close()
        response_time = (perf_counter() - start) * 1000.0
        if intended is not None:  # open model: the event carries the corrected latency, see open_model_locust
            lag = max(started_at - intended, 0.0) * 1000.0
            timings["service"], timings["lag"] = response_time, lag
            response_time += lag
        if last or not client.connected:
            self._sent_on_connection = 0
        request = self.environment.events.request
        request.fire(
            request_type=self.request_type,
            name=name,
            response_time=response_time,
            response_length=len(data) if delivery is not None or getattr(error, "phase", None) == "end-of-data" else 0,
            exception=error,
            context={"phases": timings, "delivered": delivery.delivered if delivery else 0},
        )
        if self.phase_stats:
            phase_type = self.request_type + PHASE_SUFFIX
            for phase, milliseconds in timings.items():
                request.fire(
                    request_type=phase_type, name=phase, response_time=milliseconds,
                    response_length=0, exception=None, context={},
                )
        return delivery

    @property
    def request_type(self) -> str:
        return self.protocol.upper()


class LmtpUser(SmtpUser):
    """A Locust user that delivers over LMTP (one reply per recipient after the dot)."""

    abstract = True
    protocol = "lmtp"


class TracedSmtpUser(SmtpUser):
    """An `SmtpUser` that remembers the trace id of every message the target accepted, so the
    end of the test can count what reached the sink (`loadkit.e2e`, e2e.json)."""

    abstract = True
    traced_end_to_end = True  # what turns end-to-end counting on for a run (see loadkit.e2e.plugin)

    def send(self, name: str = "send", recipients: list[str] | None = None, message: bytes | None = None):
        data = self.messages.build() if message is None else message
        delivery = super().send(name, recipients, data)
        if delivery is not None and delivery.delivered:  # queued for at least one recipient
            remember_accepted(data)
        return delivery


def target_for(user_class, host: str | None) -> Target:
    """The target of a user class from a host URL (Locust's -H); its scheme must match the class."""
    target = parse_url(host)
    protocol = user_class.protocol
    if target.protocol != protocol:
        raise TargetError(
            f"{user_class.__name__} speaks {protocol.upper()} but the host is {target}: "
            f"use {protocol}://host:port" + (" or lmtp+unix:///path" if protocol == "lmtp" else "")
        )
    return target


def message_factory_for(user_class) -> MessageFactory:
    """The process's shared factory for this user class's message settings."""
    key = (
        user_class.payload_size, user_class.message_pool_size, user_class.seed, user_class.subject,
        user_class.mail_from, user_class.rcpt_to, user_class.dkim_domain, user_class.dkim_selector, user_class.dkim_key,
        user_class.mail_profile,
    )
    factory = _factories.get(key)
    if factory is None:
        try:
            factory = _factories[key] = MessageFactory(
                payload_size=user_class.payload_size,
                pool_size=user_class.message_pool_size,
                seed=user_class.seed,
                subject=user_class.subject,
                # UTF-8 envelope addresses (SMTPUTF8) keep ASCII headers: the factory writes 7-bit messages
                sender=_ascii_or(user_class.mail_from, "loadkit@loadkit.test"),
                recipient=_ascii_or(user_class.rcpt_to, "user@loadkit.test"),
                dkim=_dkim_signer(user_class),
                profile=user_class.mail_profile,
            )
        except ValueError as error:
            raise SetupError(f"{user_class.__name__}: {error}") from None
    return factory


def _dkim_signer(user_class):
    if not user_class.dkim_domain:
        return None
    from loadkit.dkim import DkimSigner

    if user_class.dkim_key:
        return DkimSigner.from_file(user_class.dkim_selector, user_class.dkim_domain, user_class.dkim_key)
    signer = DkimSigner.generate(user_class.dkim_selector, user_class.dkim_domain)
    log.info("loadkit: DKIM key generated; publish %s._domainkey.%s TXT %s", user_class.dkim_selector,
             user_class.dkim_domain, signer.dns_txt_record().decode("ascii"))
    return signer


def _ascii_or(address: str, fallback: str) -> str:
    return address if address.isascii() else fallback


class SetupError(LoadkitError, ValueError):
    """A user class set up with something unusable (an unreadable accounts_csv, ...)."""


def next_account(path: str) -> tuple[str, str]:
    """The next (username, password) of a CSV of accounts, shared by every user of the process."""
    accounts = _accounts.get(path)
    if accounts is None:
        accounts = _accounts[path] = cycle(read_accounts(path))
    return next(accounts)


def read_accounts(path: str) -> list[tuple[str, str]]:
    try:
        with open(path, newline="") as handle:
            rows = [row for row in csv.reader(handle) if row and not row[0].startswith("#")]
    except OSError as error:
        raise SetupError(f"accounts_csv {path}: {error.strerror or error}") from None
    if not rows or any(len(row) < 2 for row in rows):
        raise SetupError(f"accounts_csv {path}: expected username,password rows")
    return [(row[0], row[1]) for row in rows]


def _numbered(address: str, numbers) -> list[str]:
    return [f"{n}{address}" for n in numbers]


def _mail_user_classes(environment):
    return [cls for cls in environment.user_classes if issubclass(cls, SmtpUser)]


def setup_problem(environment) -> str | None:
    """What keeps the mail users of this environment from running (bad host, accounts, message settings)."""
    for user_class in _mail_user_classes(environment):
        try:
            target_for(user_class, environment.host or user_class.host)
            if user_class.accounts_csv:
                read_accounts(user_class.accounts_csv)
            message_factory_for(user_class)
        except (TargetError, SetupError) as error:
            return str(error)
    return None


@events.init.add_listener
def _let_messages_finish(environment, **_kwargs):
    """Without a stop timeout Locust kills users mid-message at the end of a run:
    the server has the message, Locust never counts it. Give them time to finish."""
    mail_users = _mail_user_classes(environment)
    if mail_users and not environment.stop_timeout:
        environment.stop_timeout = max(cls.network_timeout for cls in mail_users)


@events.test_stop.add_listener
def _let_locust_write_final_csv(environment, **_kwargs):
    """Locust rewrites its --csv files once a second and not again at shutdown, so
    the last second of a run would be missing from them: wait for one more write."""
    options = environment.parsed_options
    if getattr(options, "csv_prefix", None) and not isinstance(environment.runner, WorkerRunner):
        gevent.sleep(CSV_STATS_INTERVAL_SEC + 0.2)


@events.init.add_listener
def _check_hosts_at_startup(environment, **_kwargs):
    """Headless runs know their host now: a bad one ends the run before it starts."""
    options = environment.parsed_options
    if options is None or not (options.headless or options.autostart):
        return
    if isinstance(environment.runner, WorkerRunner):
        return
    problem = setup_problem(environment)
    if problem:
        print(f"loadkit: {problem}", file=sys.stderr)
        sys.exit(2)
    refresh_loop_clock()  # building the messages took a while: --run-time's timer comes next


@events.test_start.add_listener
def _check_hosts_at_start(environment, **_kwargs):
    """A host typed into the web UI is checked when the test starts."""
    if isinstance(environment.runner, WorkerRunner):
        return
    problem = setup_problem(environment)
    if problem:
        log.error("loadkit: %s", problem)
        environment.process_exit_code = 2
        gevent.spawn(environment.runner.stop)
