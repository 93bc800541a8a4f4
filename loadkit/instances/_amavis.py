"""amavisd-new as a Postfix instance's content filter, signing and verifying DKIM.

The classic two-port layout, each port a free loopback one (the usual
numbers in brackets):

    submission smtpd  --content_filter-->  amavisd ORIGINATING (10026)  --signs-->  reinjection smtpd (10027)
    plain smtpd       --content_filter-->  amavisd inbound     (10024)  --checks->  reinjection smtpd (10025)

The reinjection smtpds run with ``content_filter=`` empty, so mail goes on
to the instance's next hop. amavisd decides by the port a message arrives
on (``$interface_policy``): ORIGINATING signs with the generated key,
whatever the sender's domain; the inbound port verifies. Its own
``@mynetworks`` is empty, so a loopback client does not make inbound mail
originating. No virus or spam scanning, banned-file or header checks:
the filter measures DKIM and its extra hop, nothing else.

amavisd runs as a private daemon (``amavisd -c FOLDER/amavisd.conf start``)
as the package's ``amavis`` user, with its home, temporary files, pid and
log (``amavis.log``) in a folder of the Postfix instance's state folder;
/etc/amavis and the system's service are never touched. Inbound
verification has no DNS to ask: its resolver is pointed at a loopback port
where nothing answers, so a key lookup fails at once (``temperror``) rather
than waiting on the network.

Where its time goes (amavisd's TIMING log, 5 KiB messages, a busy 2-core
machine): about 110 ms a message, of which receiving DATA from Postfix is
47-50 ms (waiting on TCP's delayed ACKs over loopback, not working),
signing 14-26 ms and the reply to Postfix 13-21 ms.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from loadkit.instances._dkim import DEFAULT_DOMAIN, DEFAULT_SELECTOR, DkimFilter
from loadkit.instances._system import (
    InstanceError,
    choose_port,
    is_alive,
    listens,
    read_pid,
    stop_daemon,
    tail,
    user_ids,
    wait_until,
)

START_TIMEOUT = 60.0  # amavisd loads many Perl modules before it listens
SERVERS = 2  # amavisd child processes: one per core here; Postfix sends it that many at once

CONFIG = """\
# A loadkit test instance's content filter: loopback only, DKIM only.
use strict;
$MYHOME = '{home}';
$TEMPBASE = '{home}/tmp';
$db_home = '{home}/db';
$helpers_home = '{home}/var';
$QUARANTINEDIR = undef;
$pid_file = '{home}/run/amavisd.pid';
$lock_file = '{home}/run/amavisd.lock';
$daemon_user = 'amavis';
$daemon_group = 'amavis';
$max_servers = {servers};
$child_timeout = 300;
$myhostname = 'loadkit-amavis.localdomain';
$mydomain = '{domain}';
$DO_SYSLOG = 0;
$LOGFILE = '{log}';
$log_level = 0;
$enable_db = 0;
$enable_zmq = 0;
$enable_global_cache = 0;
$nanny_details_level = 0;
$inet_socket_bind = '127.0.0.1';
@inet_acl = qw(127.0.0.1);
$inet_socket_port = [{inbound}, {originating}];
@mynetworks = ();
@local_domains_maps = (1);
$interface_policy{{'{originating}'}} = 'ORIGINATING';
$policy_bank{{'ORIGINATING'}} = {{
  originating => 1,
  forward_method => 'smtp:[127.0.0.1]:{sign_return}',
  notify_method => 'smtp:[127.0.0.1]:{sign_return}',
}};
$forward_method = 'smtp:[127.0.0.1]:{verify_return}';
$notify_method = 'smtp:[127.0.0.1]:{verify_return}';
@bypass_virus_checks_maps = (1);
@bypass_spam_checks_maps = (1);
@bypass_banned_checks_maps = (1);
@bypass_header_checks_maps = (1);
$bypass_decode_parts = 1;
@av_scanners = ();
@av_scanners_backup = ();
@decoders = ();
$final_virus_destiny = D_PASS;
$final_banned_destiny = D_PASS;
$final_spam_destiny = D_PASS;
$final_bad_header_destiny = D_PASS;
$warnbadhsender = 0;
$sa_tag_level_deflt = undef;
$X_HEADER_LINE = undef;
$enable_dkim_verification = 1;
$enable_dkim_signing = 1;
dkim_key('{domain}', '{selector}', '{key}');
@dkim_signature_options_bysender_maps = ({{
  '.' => {{ d => '{domain}', a => 'rsa-sha256', c => 'relaxed/simple', ttl => 7*24*3600 }},
}});
1;
"""

# The way to amavisd hands it the message as it was received: no header rewriting on the way.
SMTP_OUT = "smtp-amavis unix  -       -       n       -       {servers}       smtp\n" \
           "  -o smtp_data_done_timeout=1200\n  -o smtp_send_xforward_command=yes\n" \
           "  -o smtp_dns_support_level=disabled\n  -o max_use=20\n  -o smtp_header_checks=\n" \
           "  -o smtp_body_checks=\n"
# What comes back from amavisd has been filtered and checked: no filter, no checks again.
REINJECT = """\
127.0.0.1:{port} inet n  -       n       -       -       smtpd
  -o content_filter=
  -o smtpd_milters=
  -o receive_override_options=no_unknown_recipient_checks,no_header_body_checks,no_milters,no_address_mappings
  -o smtpd_helo_restrictions=
  -o smtpd_client_restrictions=
  -o smtpd_sender_restrictions=
  -o smtpd_relay_restrictions=permit_mynetworks,reject
  -o smtpd_recipient_restrictions=permit_mynetworks,reject
  -o smtpd_sasl_auth_enable=no
  -o mynetworks=127.0.0.0/8
  -o smtpd_authorized_xforward_hosts=127.0.0.0/8
  -o smtpd_tls_security_level=none
"""


class AmavisFilter(DkimFilter):
    """amavisd-new on two loopback ports, with the two reinjection ports Postfix listens on."""

    filter_name = "amavis"
    program = "amavisd"
    packages = ["amavisd-new"]
    label = "amavisd-new (amavisd)"
    user = "amavis"

    def __init__(self, folder: Path, domain: str = DEFAULT_DOMAIN, selector: str = DEFAULT_SELECTOR,
                 servers: int = SERVERS):
        super().__init__(folder, domain, selector)
        self.servers = servers
        self.ports: dict[str, int] = {}  # inbound, originating (amavisd); verify_return, sign_return (Postfix)

    @property
    def config_path(self) -> Path:
        return self.folder / "amavisd.conf"

    @property
    def home(self) -> Path:
        """amavisd's own folder (its user's); the one above, with the config, is root's alone."""
        return self.folder / "home"

    @property
    def log_path(self) -> Path:
        return self.home / "amavis.log"

    @property
    def pid_path(self) -> Path:
        return self.home / "run" / "amavisd.pid"

    def content_filter(self, bank: str) -> str:
        """What Postfix's content_filter takes for "inbound" or "originating"."""
        return f"smtp-amavis:[127.0.0.1]:{self.ports[bank]}"

    def choose_ports(self) -> None:
        """Four free loopback ports, chosen before Postfix's master.cf is written."""
        taken: set[int] = set()
        for name in ("inbound", "originating", "verify_return", "sign_return"):
            port = choose_port(0)
            while port in taken:
                port = choose_port(0)
            taken.add(port)
            self.ports[name] = port

    def master_cf(self) -> str:
        """The Postfix services the layout needs: the way out to amavisd and the two ways back."""
        return (SMTP_OUT.format(servers=self.servers)
                + REINJECT.format(port=self.ports["verify_return"])
                + REINJECT.format(port=self.ports["sign_return"]))

    def start(self) -> None:
        """Start amavisd (Postfix's reinjection ports need not listen yet: mail waits in Postfix's queue)."""
        program = self.check_installed()
        if not self.ports:
            self.choose_ports()
        uid, gid = user_ids(self.user)
        self.make_folder_and_key()  # root's, and not writable by amavisd: it refuses a config file it could change
        for sub in ("", "tmp", "db", "var", "run"):
            path = self.home / sub
            path.mkdir(parents=True, exist_ok=True)
            os.chown(path, uid, gid)
            os.chmod(path, 0o750)
        os.chmod(self.home, 0o755)
        self.config_path.write_text(CONFIG.format(
            home=self.home, log=self.log_path, servers=self.servers, domain=self.domain, selector=self.selector,
            key=self.key.private_key, **self.ports))
        self.log_path.touch()
        os.chown(self.log_path, uid, gid)
        try:
            done = subprocess.run([program, "-c", str(self.config_path), "start"], capture_output=True, text=True,
                                  check=False, timeout=START_TIMEOUT, env=self._environment(), cwd=self.home,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise InstanceError(f"amavisd did not start within {START_TIMEOUT:.0f}s") from None
        if done.returncode != 0:
            said = (done.stderr or done.stdout).strip().splitlines()
            said_last = said[-1] if said else f"exit {done.returncode}"
            raise InstanceError(self._error_from_log() or f"amavisd did not start: {said_last}")
        ports = (self.ports["inbound"], self.ports["originating"])

        def listening() -> bool:
            if self._error_from_log():
                raise InstanceError(self._error_from_log())
            return all(listens("127.0.0.1", port) for port in ports)

        if not wait_until(listening, START_TIMEOUT):
            raise InstanceError(self._error_from_log()
                                or f"amavisd does not listen on 127.0.0.1:{ports} after {START_TIMEOUT:.0f}s")
        self.pid = read_pid(self.pid_path)

    def _environment(self) -> dict:
        # Net::DNS asks here: nothing listens on loopback port 53, so lookups fail at once.
        return {**super()._environment(), "RES_NAMESERVERS": "127.0.0.1"}

    def _error_from_log(self) -> str | None:
        for line in reversed(tail(self.log_path, 30)):
            if "TROUBLE" in line or "FATAL" in line:
                return "amavisd did not start: " + line.split("]: ", 1)[-1].strip()[:300]
        return None

    def is_running(self) -> bool:
        return is_alive(self.pid) and _working_folder(self.pid) == self.home

    def stop(self, timeout: float) -> None:
        if self.is_running():
            stop_daemon(self.pid, timeout, expect=None)

    def describe(self) -> dict:
        return super().describe(ports=dict(self.ports), config=str(self.config_path), log=str(self.log_path))

    @classmethod
    def restore(cls, info: dict) -> "AmavisFilter":
        amavis = cls(Path(info["folder"]), *cls.key_names(info)).restore_common(info)
        amavis.ports = dict(info.get("ports") or {})
        return amavis


def _working_folder(pid: int) -> Path | None:
    """Where a process runs. amavisd writes its name over its arguments and environment, so a pid
    read back later is known to be this filter's by the folder it was started in."""
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None
