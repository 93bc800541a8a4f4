"""A private Postfix on loopback that relays everything to a sink (or Dovecot).

Its own ``config_directory`` (``etc/``), ``queue_directory`` (``queue/``)
and ``data_directory`` (``data/``) live in the state folder; the system's
/etc/postfix and its running Postfix, if any, are never touched.
``postfix -c DIR`` is trusted without ``alternate_config_directories``
because it runs as root, which Postfix's master requires anyway.

Mail never leaves the machine: ``transport_maps = static:...`` sends every
recipient, local or not, bounces included, to the one loopback next hop,
written as a bracketed IP address so no DNS lookup happens. The log goes to
``log/postfix.log`` through postlogd (Postfix >= 3.4), readable without
syslog. STARTTLS is offered with a self-signed certificate (``tls/``);
AUTH, when asked for, is checked by a Dovecot instance's auth socket.

DKIM can be put into the path (`dkim`), started and stopped with Postfix,
in ``dkim/`` of the state folder: amavisd-new as a content filter in the
classic two-port layout (`loadkit.instances._amavis`: a submission port
whose mail is signed, the plain port's verified), or OpenDKIM as a milter on
every smtpd (`loadkit.instances._opendkim`, signing or verifying). The
key's public half is in ``dkim/public/``, and the sink Postfix starts
verifies with it (``loadkit sink --dkim-verify``).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

from loadkit.instances._amavis import AmavisFilter
from loadkit.instances._base import START_TIMEOUT, Instance
from loadkit.instances._dkim import DEFAULT_DOMAIN, DEFAULT_SELECTOR, DKIM_FILTERS
from loadkit.instances._opendkim import OpenDkimMilter
from loadkit.instances._sink import SinkProcess
from loadkit.instances._system import (
    InstanceError,
    MissingPackages,
    check_reachable,
    choose_port,
    find_program,
    is_loopback,
    is_root,
    listens,
    read_pid,
    run_command,
    stop_daemon,
    tail,
    user_ids,
    wait_until,
)
from loadkit.instances._tls import self_signed_certificate
from loadkit.urls import Target, TargetError, parse_endpoint, parse_url

PACKAGES = ["postfix"]
MIN_VERSION = (3, 4)  # maillog_file and postlogd
QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")
_SETTING_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def count_queue_listing(output: str) -> dict[str, int]:
    """Messages per queue from ``postqueue -j``'s lines, each message once.

    showq reads the queue folders one after the other while the queue
    manager renames files between them: a message moved from a folder
    read earlier to one read later (incoming to active, active to deferred)
    is listed twice, under one queue id; counted here once, in the later
    queue. One moved the other way (deferred back to active for a retry)
    can be missed by a listing: `drain_queue` reads an empty queue twice.
    """
    where: dict[str, str] = {}
    for number, line in enumerate(output.splitlines()):
        if line.strip():
            record = json.loads(line)
            where[record.get("queue_id") or f"line {number}"] = record.get("queue_name", "unknown")
    counts = dict.fromkeys(QUEUES, 0)
    for name in where.values():
        counts[name] = counts.get(name, 0) + 1
    return counts


def drain_queue(queue_size, timeout: float, interval: float, sleep=time.sleep) -> dict:
    """Wait until ``queue_size()`` is 0, at most `timeout` seconds: {drained, seconds, timeout, left}.

    Empty counts once read twice in a row, `interval` apart: one listing can
    miss a message the queue manager is moving (`count_queue_listing`), and a
    count made then would find it lost.
    """
    started = time.monotonic()
    empty_reads = 0
    while True:
        left = queue_size()
        empty_reads = empty_reads + 1 if left == 0 else 0
        waited = time.monotonic() - started
        if empty_reads == 2 or waited >= timeout:
            return {"drained": left == 0, "seconds": round(waited, 3), "timeout": timeout, "left": left}
        sleep(interval)


# Every service runs unchrooted: a chroot would need copies of system files
# in the queue folder, which Debian's init script makes and `postfix start`
# does not. "-" process limits take default_process_limit.
MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command
{listen} inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def parse_relay(text: str) -> Target:
    """Where Postfix delivers: ``smtp://127.0.0.1:2525``, ``lmtp:127.0.0.1:24``, ``lmtp:unix:/path``.

    Only loopback next hops are accepted: an instance never relays outside.
    """
    try:
        if "://" in text:
            target = parse_url(text)
        else:
            protocol, colon, rest = text.partition(":")
            if not colon or protocol not in ("smtp", "lmtp"):
                raise TargetError(f"{text}: expected smtp:HOST:PORT, lmtp:HOST:PORT, lmtp:unix:PATH or a URL")
            target = parse_endpoint(rest, protocol)
    except TargetError as error:
        raise InstanceError(f"--deliver {error}") from None
    if target.is_unix:
        if target.protocol != "lmtp":
            raise InstanceError(f"--deliver {text}: Postfix speaks SMTP over TCP only; use lmtp:unix:PATH for a socket")
        return target
    if not is_loopback(target.host):
        raise InstanceError(f"--deliver {text}: a test instance only delivers to loopback (127.0.0.1 or ::1)")
    if target.tls or target.username:
        raise InstanceError(f"--deliver {text}: plain smtp:// or lmtp:// only")
    return target


def postfix_nexthop(target: Target) -> str:
    """The transport:nexthop that Postfix's transport_maps takes."""
    if target.is_unix:
        return f"lmtp:unix:{target.path}"
    host = "127.0.0.1" if target.host == "localhost" else target.host
    return f"{target.protocol}:[{host}]:{target.port}"


class Postfix(Instance):
    """Postfix on ``127.0.0.1:port`` relaying all mail to a loadkit sink or to `relay_to`.

    ::

        with Postfix(state_dir) as postfix:             # port 0: a free one
            send_to(postfix.smtp_url)
            postfix.wait_for_empty_queue(60)
        postfix.sink_stats()["messages"]                  # the sink's counters, after stop

    `relay_to`: None (start a ``loadkit sink`` in the state folder) or a
    loopback next hop, e.g. ``"lmtp:127.0.0.1:24"`` or ``"smtp://127.0.0.1:2525"``.
    `sasl_socket`: a Dovecot auth socket (`Dovecot.auth_socket`); smtpd then
    offers AUTH PLAIN/LOGIN and checks passwords with Dovecot.
    `settings`: extra main.cf parameters, written last so they win.
    `dkim`: None, "amavis" (mail on `submission_url` is signed, on
    `smtp_url` verified) or "opendkim" (a milter on `smtp_url`; `dkim_mode`
    "sign" or "verify"; `dkim_socket` "inet" on loopback or "unix"), signing as
    `dkim_domain` with `dkim_selector`.
    """

    server = "postfix"

    def __init__(self, state_dir, port: int = 0, relay_to: str | Target | None = None,
                 settings: dict[str, str] | None = None, sasl_socket: str | Path | None = None,
                 dkim: str | None = None, dkim_domain: str = DEFAULT_DOMAIN, dkim_selector: str = DEFAULT_SELECTOR,
                 dkim_mode: str = "sign", dkim_socket: str = "inet"):
        super().__init__(state_dir, port)
        self.sasl_socket = Path(sasl_socket).absolute() if sasl_socket else None
        if isinstance(relay_to, str):
            relay_to = parse_relay(relay_to)
        self.relay_target: Target | None = relay_to
        self.settings = dict(settings or {})
        for name, value in self.settings.items():
            if not _SETTING_NAME.match(name):
                raise InstanceError(f"--set {name}: not a Postfix parameter name")
            if "\n" in value:
                raise InstanceError(f"--set {name}: a value is one line")
        self.dkim_filter: AmavisFilter | OpenDkimMilter | None = None
        if dkim == "amavis":
            if dkim_mode != "sign" or dkim_socket != "inet":
                raise InstanceError("--dkim-mode and --dkim-socket go with --dkim opendkim: amavis signs on the "
                                    "submission port and verifies on the plain one")
            self.dkim_filter = AmavisFilter(self.path("dkim"), dkim_domain, dkim_selector)
        elif dkim == "opendkim":
            self.dkim_filter = OpenDkimMilter(self.path("dkim"), dkim_mode, dkim_domain, dkim_selector,
                                              socket=dkim_socket)
        elif dkim is not None:
            raise InstanceError(f"--dkim {dkim}: expected one of {', '.join(DKIM_FILTERS)}")
        self.submission_port: int | None = None
        self.sink: SinkProcess | None = None
        self.master_pid: int | None = None
        self.version: str | None = None

    # -- where things are -------------------------------------------------------

    @property
    def smtp_url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    @property
    def submission_url(self) -> str | None:
        """With amavis: where mail is submitted to be signed (the plain port's mail is verified)."""
        return f"smtp://{self.host}:{self.submission_port}" if self.submission_port else None

    @property
    def dkim_public_dir(self) -> Path | None:
        """The folder of the DKIM key's public half (``loadkit sink --dkim-verify`` reads it)."""
        key = self.dkim_filter.key if self.dkim_filter is not None else None
        return key.public_dir if key is not None else None

    @property
    def config_dir(self) -> Path:
        return self.path("etc")

    @property
    def queue_dir(self) -> Path:
        return self.path("queue")

    @property
    def data_dir(self) -> Path:
        return self.path("data")

    @property
    def log_path(self) -> Path:
        return self.path("log", "postfix.log")

    @property
    def tls_certificate(self) -> Path:
        return self.path("tls", "cert.pem")

    @property
    def tls_key(self) -> Path:
        return self.path("tls", "key.pem")

    @property
    def relay_url(self) -> str | None:
        if self.sink is not None:
            return self.sink.url
        return self.relay_target.url() if self.relay_target else None

    # -- the queue ----------------------------------------------------------------

    def queue_counts(self) -> dict[str, int]:
        """Messages per queue (maildrop, incoming, active, deferred, hold), from ``postqueue -j``."""
        output = run_command([self._program("postqueue"), "-c", str(self.config_dir), "-j"], "postqueue")
        return count_queue_listing(output)

    def queue_size(self) -> int:
        return sum(self.queue_counts().values())

    def wait_for_empty_queue(self, timeout: float, interval: float = 0.1) -> bool:
        """Wait until every queue is empty (read so twice, see `drain_queue`); False if mail is still
        queued after `timeout` seconds."""
        return drain_queue(self.queue_size, timeout, interval)["drained"]

    def sink_stats(self) -> dict | None:
        """The sink's counters, written when it stops (None before, or with no sink)."""
        return self.sink.stats() if self.sink is not None else None

    # -- lifecycle ------------------------------------------------------------------

    def _program(self, name: str) -> str:
        return find_program(name, PACKAGES, f"Postfix ({name})")

    def _check_installed(self) -> None:
        for name in ("postfix", "postconf", "postqueue"):
            self._program(name)
        version = run_command([self._program("postconf"), "-d", "-h", "mail_version"], "postconf").strip()
        numbers = tuple(int(n) for n in re.findall(r"\d+", version)[:2])
        if numbers < MIN_VERSION:
            raise MissingPackages(f"Postfix >= 3.4 (found {version})", PACKAGES)
        self.version = version
        if self.dkim_filter is not None:
            self.dkim_filter.check_installed()
        if not is_root():
            raise InstanceError("a Postfix instance must be started as root (Postfix's master process runs as root)")
        user_ids("postfix")  # the package creates the mail_owner account

    def _start(self) -> None:
        # Postfix's daemons run as the postfix user: without this, the first of them fails
        # later with "open lock file ... Permission denied" and names no folder.
        check_reachable(self.queue_dir, "postfix")
        self.port = choose_port(self.requested_port, self.host)
        if self.sasl_socket is not None and not self.sasl_socket.is_socket():
            raise InstanceError(f"no Dovecot auth socket at {self.sasl_socket}: start Dovecot first")
        self.make_dirs("etc", "log", "queue")
        self_signed_certificate(self.path("tls"), "loadkit-postfix.localdomain")
        if self.dkim_filter is not None:  # first: the sink verifies with its key
            self._start_dkim_filter()
        if self.relay_target is None:
            self.sink = SinkProcess(self.path("sink"), hostname="loadkit-sink", dkim_verify=self.dkim_public_dir)
            self.sink.start()
        (self.config_dir / "main.cf").write_text(self._main_cf())
        (self.config_dir / "master.cf").write_text(self._master_cf())
        postfix = self._program("postfix")
        try:
            run_command([postfix, "-c", str(self.config_dir), "start"], "postfix did not start", timeout=START_TIMEOUT)
        except InstanceError as error:
            raise InstanceError(self._fatal_from_log() or str(error)) from None
        self.master_pid = read_pid(self.queue_dir / "pid" / "master.pid")
        if not wait_until(lambda: listens(self.host, self.port), START_TIMEOUT):
            raise InstanceError(
                self._fatal_from_log() or f"postfix does not listen on {self.host}:{self.port} after {START_TIMEOUT:.0f}s"
            )

    def _start_dkim_filter(self) -> None:
        if isinstance(self.dkim_filter, AmavisFilter):
            self.dkim_filter.choose_ports()
            self.submission_port = choose_port(0, self.host)
        self.dkim_filter.start()

    def _master_cf(self) -> str:
        master = MASTER_CF.format(listen=f"{self.host}:{self.port}")
        amavis = self.dkim_filter if isinstance(self.dkim_filter, AmavisFilter) else None
        if amavis is None:
            return master
        # The classic layout: the plain port's mail is checked, the submission port's signed.
        master = master.replace(" smtpd\n", f" smtpd\n  -o content_filter={amavis.content_filter('inbound')}\n", 1)
        return (master
                + f"{self.host}:{self.submission_port} inet n  -       n       -       -       smtpd\n"
                + f"  -o content_filter={amavis.content_filter('originating')}\n"
                + amavis.master_cf())

    def _fatal_from_log(self) -> str | None:
        for line in reversed(tail(self.log_path, 50)):
            if "fatal:" in line and "startup failed" not in line:
                return "postfix did not start: " + line.split("fatal:", 1)[1].strip()
        return None

    def _main_cf(self) -> str:
        nexthop = postfix_nexthop(self.relay_target) if self.sink is None else f"smtp:[127.0.0.1]:{self.sink.port}"
        ipv6 = ":" in self.host or (self.relay_target is not None and ":" in (self.relay_target.host or ""))
        state = self.state_dir
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.queue_dir),
            "data_directory": str(self.data_dir),
            "maillog_file": str(self.log_path),
            "maillog_file_prefixes": str(state),
            "myhostname": "loadkit-postfix.localdomain",
            "mydomain": "localdomain",
            "myorigin": "$myhostname",
            "mydestination": "",
            "local_recipient_maps": "",
            "alias_maps": "",
            "alias_database": "",
            "inet_interfaces": "loopback-only",
            "inet_protocols": "all" if ipv6 else "ipv4",
            "mynetworks": "127.0.0.0/8 [::1]/128",
            "smtpd_relay_restrictions": "permit_mynetworks, permit_sasl_authenticated, reject",
            "smtpd_recipient_restrictions": "permit_mynetworks, permit_sasl_authenticated, reject",
            # one loopback next hop for everything, no DNS on the way there
            "relayhost": nexthop.partition(":")[2] if nexthop.startswith("smtp:") else "",
            "default_transport": nexthop,
            "relay_transport": nexthop,
            "transport_maps": f"static:{nexthop}",
            "smtp_dns_support_level": "disabled",
            "smtp_host_lookup": "native",
            "lmtp_host_lookup": "native",
            "smtpd_peername_lookup": "no",
            "smtp_tls_security_level": "none",
            "lmtp_tls_security_level": "none",
            # STARTTLS for clients that ask
            "smtpd_tls_security_level": "may",
            "smtpd_tls_cert_file": str(self.tls_certificate),
            "smtpd_tls_key_file": str(self.tls_key),
            "smtpd_tls_loglevel": "1",  # one "TLS connection established" line per session
            **self._sasl_settings(),
            **self._milter_settings(),
            # room for load: many sessions, no anvil limits, quick retries of deferred mail
            "default_process_limit": "500",
            "smtpd_client_connection_count_limit": "0",
            "smtpd_client_event_limit_exceptions": "$mynetworks",
            "default_destination_concurrency_limit": "100",
            "message_size_limit": "52428800",
            "minimal_backoff_time": "5s",
            "maximal_backoff_time": "30s",
            "queue_run_delay": "5s",
            "maximal_queue_lifetime": "1h",
            "bounce_queue_lifetime": "1h",
            "biff": "no",
            "append_dot_mydomain": "no",
            "readme_directory": "no",
            "smtpd_banner": "$myhostname ESMTP $mail_name (loadkit instance)",
            **self.settings,
        }
        lines = ["# A loadkit test instance: loopback only, all mail to one loopback next hop."]
        lines += [f"{name} = {value}" for name, value in settings.items()]
        return "\n".join(lines) + "\n"

    def _sasl_settings(self) -> dict[str, str]:
        if self.sasl_socket is None:
            return {}
        return {
            "smtpd_sasl_auth_enable": "yes",
            "smtpd_sasl_type": "dovecot",
            "smtpd_sasl_path": str(self.sasl_socket),
            "smtpd_tls_auth_only": "no",  # load tests measure AUTH with and without STARTTLS
            "smtpd_sasl_authenticated_header": "no",
        }

    def _milter_settings(self) -> dict[str, str]:
        if not isinstance(self.dkim_filter, OpenDkimMilter):
            return {}
        return {
            "smtpd_milters": self.dkim_filter.milter,
            "non_smtpd_milters": "$smtpd_milters",
            "milter_default_action": "tempfail",  # a milter that fails shows as deferred mail, not unsigned mail
            "milter_protocol": "6",
        }

    def _stop(self, timeout: float) -> None:
        if (self.config_dir / "main.cf").exists() and self._master_running():
            try:
                subprocess.run(
                    [self._program("postfix"), "-c", str(self.config_dir), "stop"],
                    capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL,
                )
            except (subprocess.TimeoutExpired, OSError):
                pass
        # `postfix stop` returns before the master and its children are gone
        master = self.master_pid or read_pid(self.queue_dir / "pid" / "master.pid")
        stop_daemon(master, timeout, f"MAIL_CONFIG={self.config_dir}")
        if self.dkim_filter is not None:
            self.dkim_filter.stop(timeout)
        if self.sink is not None:
            self.sink.stop(timeout)

    def _master_running(self) -> bool:
        try:
            result = subprocess.run(
                [self._program("postfix"), "-c", str(self.config_dir), "status"],
                capture_output=True, timeout=10, stdin=subprocess.DEVNULL,
            )
        except (subprocess.TimeoutExpired, OSError, MissingPackages):
            return False
        return result.returncode == 0

    def _running(self) -> bool:
        return self._master_running()

    def _describe(self) -> dict:
        return {
            "version": self.version,
            "smtp_url": self.smtp_url if self.port else None,
            "relay_url": self.relay_url,
            "sink": self.sink.describe() if self.sink is not None else None,
            "master_pid": self.master_pid,
            "config_directory": str(self.config_dir),
            "queue_directory": str(self.queue_dir),
            "log": str(self.log_path),
            "tls_certificate": str(self.tls_certificate),
            "tls_key": str(self.tls_key),
            "settings": self.settings,
            "sasl_socket": str(self.sasl_socket) if self.sasl_socket else None,
            "submission_url": self.submission_url,
            "dkim": self.dkim_filter.describe() if self.dkim_filter is not None else None,
        }

    def _restore(self, info: dict) -> None:
        self.version = info.get("version")
        self.master_pid = info.get("master_pid")
        self.settings = info.get("settings") or {}
        self.sasl_socket = Path(info["sasl_socket"]) if info.get("sasl_socket") else None
        dkim = info.get("dkim")
        if dkim:
            self.dkim_filter = (AmavisFilter if dkim.get("filter") == "amavis" else OpenDkimMilter).restore(dkim)
        if info.get("submission_url"):
            self.submission_port = int(info["submission_url"].rsplit(":", 1)[1])
        if info.get("sink"):
            self.sink = SinkProcess.restore(info["sink"])
        elif info.get("relay_url"):
            self.relay_target = parse_relay(info["relay_url"])

    def status(self) -> dict:
        status = super().status()
        if status["running"]:
            try:
                status["queue"] = self.queue_counts()
            except InstanceError:
                status["queue"] = None
        if self.sink is not None:
            status["sink_running"] = self.sink.is_running()
        if self.dkim_filter is not None:
            status["dkim_running"] = self.dkim_filter.is_running()
        return status

    def summary_lines(self) -> list[str]:
        relay = f"sink {self.relay_url}" if self.sink is not None else str(self.relay_url)
        return [
            f"postfix: {self.smtp_url} -> {relay}",
            f"  state folder: {self.state_dir}",
            f"  log: {self.log_path}",
            f"  STARTTLS certificate: {self.tls_certificate}",
            *([f"  AUTH PLAIN/LOGIN checked by Dovecot: {self.sasl_socket}"] if self.sasl_socket else []),
            *self._dkim_lines(),
        ]

    def _dkim_lines(self) -> list[str]:
        dkim = self.dkim_filter
        if dkim is None or dkim.key is None:
            return []
        if isinstance(dkim, AmavisFilter):
            lines = [f"  DKIM by amavisd-new: submission {self.submission_url} is signed, {self.smtp_url} verified",
                     f"  amavisd log: {dkim.log_path}"]
        else:
            lines = [f"  DKIM by OpenDKIM ({dkim.mode}): milter {dkim.milter}"]
        return lines + [f"  DKIM key: {dkim.key.dns_name}, public half in {dkim.key.public_dir}",
                        f"  DKIM TXT record: {dkim.key.txt_record_path}"]
