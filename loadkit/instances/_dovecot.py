"""A private Dovecot that speaks LMTP only and delivers to maildirs in its state folder.

``dovecot -c STATE/dovecot.conf`` with ``base_dir`` (sockets, pid),
``state_dir`` and ``log_path`` in the state folder, so it shares nothing
with the system's Dovecot. LMTP listens on a loopback port and on the unix
socket ``run/lmtp``. Every recipient is accepted: a static userdb maps any
user to ``mail/USER`` (maildir), owned by one unprivileged user (``nobody``
when started as root: Dovecot refuses to deliver mail as root; the caller
otherwise). A static passdb (one password for every user, ``loadkit`` by
default) lets the auth socket ``run/auth-client`` serve SMTP AUTH tests.

Dovecot 2.3 and 2.4 spell their configuration differently; both are written.
"""

from __future__ import annotations

import os
import pwd
import re
from pathlib import Path

from loadkit.instances._base import START_TIMEOUT, Instance
from loadkit.instances._system import (
    InstanceError,
    check_reachable,
    choose_port,
    find_program,
    group_name,
    is_alive,
    is_root,
    listens,
    read_pid,
    require_file,
    run_command,
    stop_daemon,
    tail,
    user_ids,
    wait_until,
)

PACKAGES = ["dovecot-core", "dovecot-lmtpd"]
LMTP_PROGRAM = "/usr/lib/dovecot/lmtp"
MAIL_USER_AS_ROOT = "nobody"
SOCKET_PATH_LIMIT = 107  # sun_path; Dovecot's longest socket name in base_dir is ~25 characters
DEFAULT_PASSWORD = "loadkit"


class Dovecot(Instance):
    """Dovecot's LMTP on ``127.0.0.1:port`` and ``STATE/run/lmtp``, delivering to ``STATE/mail/USER``.

    ::

        with Dovecot(state_dir) as dovecot:
            send_lmtp(dovecot.lmtp_url)              # or dovecot.lmtp_socket
            dovecot.delivered_count()                # message files in all maildirs
    """

    server = "dovecot"

    def __init__(self, state_dir, port: int = 0, password: str = DEFAULT_PASSWORD):
        super().__init__(state_dir, port)
        self.password = password
        self.version: str | None = None
        self.master_pid: int | None = None
        self.mail_user: str | None = None

    # -- where things are -------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.path("dovecot.conf")

    @property
    def base_dir(self) -> Path:
        return self.path("run")

    @property
    def lmtp_url(self) -> str:
        return f"lmtp://{self.host}:{self.port}"

    @property
    def lmtp_socket(self) -> Path:
        return self.base_dir / "lmtp"

    @property
    def lmtp_socket_url(self) -> str:
        return f"lmtp+unix://{self.lmtp_socket}"

    @property
    def auth_socket(self) -> Path:
        """Dovecot's SASL socket (for Postfix's ``smtpd_sasl_type = dovecot``)."""
        return self.base_dir / "auth-client"

    @property
    def mail_dir(self) -> Path:
        return self.path("mail")

    @property
    def log_path(self) -> Path:
        return self.path("log", "dovecot.log")

    def maildir_files(self, user: str | None = None) -> list[Path]:
        """Delivered message files (new/ and cur/) of one user's maildir, or of all."""
        roots = [self.mail_dir / user] if user else [p for p in self.mail_dir.iterdir() if p.is_dir()]
        return [file for root in roots for sub in ("new", "cur") if (root / sub).is_dir()
                for file in (root / sub).iterdir()]

    def delivered_count(self, user: str | None = None) -> int:
        return len(self.maildir_files(user))

    # -- lifecycle ------------------------------------------------------------------

    def _program(self) -> str:
        return find_program("dovecot", PACKAGES, "Dovecot")

    def _check_installed(self) -> None:
        self._program()
        require_file(LMTP_PROGRAM, PACKAGES, "Dovecot's LMTP server (dovecot-lmtpd)")
        self.version = run_command([self._program(), "--version"], "dovecot --version").split()[0]

    def _major_minor(self) -> tuple[int, int]:
        numbers = [int(n) for n in re.findall(r"\d+", self.version or "")[:2]]
        return tuple(numbers) if len(numbers) == 2 else (2, 3)

    def _start(self) -> None:
        if len(str(self.base_dir)) + 25 > SOCKET_PATH_LIMIT:
            raise InstanceError(f"{self.state_dir}: too long for Dovecot's unix sockets; choose a shorter --dir")
        self.port = choose_port(self.requested_port, self.host)
        if is_root():
            self.mail_user = MAIL_USER_AS_ROOT
            check_reachable(self.state_dir, self.mail_user)
        else:
            self.mail_user = pwd.getpwuid(os.geteuid()).pw_name
        uid, gid = user_ids(self.mail_user)
        self.make_dirs("run", "log", "lib", "mail")
        os.chown(self.mail_dir, uid, gid)
        self.config_path.write_text(self._config(uid, gid))
        try:
            run_command([self._program(), "-c", str(self.config_path)], "dovecot did not start", timeout=START_TIMEOUT)
        except InstanceError as error:
            raise InstanceError(self._error_from_log() or str(error)) from None
        pid_file = self.base_dir / "master.pid"
        if not wait_until(lambda: listens(self.host, self.port) and self.lmtp_socket.exists() and read_pid(pid_file),
                          START_TIMEOUT):
            raise InstanceError(
                self._error_from_log() or f"dovecot does not listen on {self.host}:{self.port} after {START_TIMEOUT:.0f}s"
            )
        self.master_pid = read_pid(pid_file)

    def _error_from_log(self) -> str | None:
        for line in reversed(tail(self.log_path, 50)):
            if "Fatal:" in line or "Error:" in line:
                return "dovecot did not start: " + re.split(r"(?:Fatal|Error): ", line, maxsplit=1)[-1]
        return None

    def _config(self, uid: int, gid: int) -> str:
        state = self.state_dir
        users = ""
        if not is_root():  # an unprivileged Dovecot runs every service as its caller
            me, group = pwd.getpwuid(os.geteuid()).pw_name, group_name(os.getegid())
            users = (f"default_internal_user = {me}\ndefault_login_user = {me}\n"
                     f"default_internal_group = {group}\nservice anvil {{\n  chroot =\n}}\n")
        common = f"""\
base_dir = {self.base_dir}
state_dir = {self.path('lib')}
instance_name = loadkit-dovecot-{self.port}
protocols = lmtp
listen = {self.host}
log_path = {self.log_path}
ssl = no
hostname = loadkit-dovecot.localdomain
postmaster_address = postmaster@loadkit-dovecot.localdomain
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
last_valid_gid = {gid}
{users}lmtp_save_to_detail_mailbox = no
recipient_delimiter =
auth_mechanisms = plain login
# a wrong password is answered at once, not after 2 s (repeated failures from
# one address are still slowed down by Dovecot's auth penalty, as in production)
auth_failure_delay = 0
# no stats-writer: a process starting while Dovecot stops would wait 5 s for its handshake
stats_writer_socket_path =
service lmtp {{
  inet_listener lmtp {{
    port = {self.port}
  }}
  unix_listener lmtp {{
    mode = 0666
  }}
}}
service auth {{
  unix_listener auth-client {{
    mode = 0666
  }}
}}
"""
        if self._major_minor() >= (2, 4):
            version = re.match(r"[\d.]+", self.version).group().strip(".")  # "2.4.1-4" -> "2.4.1"
            return f"""\
dovecot_config_version = {version}
dovecot_storage_version = {version}
# A loadkit test instance: LMTP on loopback, any recipient to maildirs in {state}
{common}mail_driver = maildir
mail_home = {self.mail_dir}/%{{user}}
mail_path = {self.mail_dir}/%{{user}}
auth_allow_cleartext = yes
passdb static {{
  password = {self.password}
}}
userdb static {{
  fields {{
    uid = {uid}
    gid = {gid}
    home = {self.mail_dir}/%{{user}}
  }}
}}
"""
        return f"""\
# A loadkit test instance: LMTP on loopback, any recipient to maildirs in {state}
{common}mail_location = maildir:{self.mail_dir}/%u
disable_plaintext_auth = no
passdb {{
  driver = static
  args = password={self.password}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={self.mail_dir}/%u
}}
"""

    def _stop(self, timeout: float) -> None:
        # SIGTERM is what `dovecot stop` sends
        stop_daemon(self.master_pid or read_pid(self.base_dir / "master.pid"), timeout, str(self.config_path))

    def _running(self) -> bool:
        pid = self.master_pid or read_pid(self.base_dir / "master.pid")
        return is_alive(pid, expect=str(self.config_path))

    def _describe(self) -> dict:
        return {
            "version": self.version,
            "lmtp_url": self.lmtp_url if self.port else None,
            "lmtp_socket": str(self.lmtp_socket),
            "auth_socket": str(self.auth_socket),
            "password": self.password,
            "mail_dir": str(self.mail_dir),
            "mail_user": self.mail_user,
            "master_pid": self.master_pid,
            "config": str(self.config_path),
            "log": str(self.log_path),
        }

    def _restore(self, info: dict) -> None:
        self.version = info.get("version")
        self.master_pid = info.get("master_pid")
        self.mail_user = info.get("mail_user")
        self.password = info.get("password") or DEFAULT_PASSWORD

    def status(self) -> dict:
        status = super().status()
        if self.mail_dir.is_dir():
            status["delivered"] = self.delivered_count()
        return status

    def summary_lines(self) -> list[str]:
        return [
            f"dovecot: {self.lmtp_url} and {self.lmtp_socket_url} -> maildirs in {self.mail_dir}",
            f"  state folder: {self.state_dir}",
            f"  log: {self.log_path}",
            f"  SASL: {self.auth_socket} (any user, password {self.password!r})",
        ]
