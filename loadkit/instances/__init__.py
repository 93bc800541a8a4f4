"""Real servers on loopback for tests, demos and local baselines.

Each instance runs the distribution's own server programs, bound to
127.0.0.1 only, with everything it writes (configuration, queue, sockets,
pid files, logs, mail) in one state folder::

    from loadkit.instances import Apache, Dovecot, Postfix

    with Dovecot(folder / "dovecot") as dovecot, \\
         Postfix(folder / "postfix", relay_to=dovecot.lmtp_url) as postfix:
        ...                                    # postfix.smtp_url -> LMTP -> maildirs

- `Postfix`: smtpd on a loopback port, relaying all mail to a ``loadkit
  sink`` it starts (or to `relay_to`); queue sizes, log, STARTTLS. Root only.
- `Dovecot`: LMTP on a loopback port and a unix socket, any recipient
  delivered to a maildir in the state folder.
- `Apache`: static files of known sizes, a CGI page and mod_status.

``loadkit target postfix|dovecot|apache up|down|status`` drives the same
classes from the command line. Errors are `InstanceError` (one line for
people); `MissingPackages` says which apt packages to install.
"""

from loadkit.instances._apache import DYNAMIC_PATH, STATIC_FILES, Apache, parse_server_status
from loadkit.instances._base import Instance
from loadkit.instances._dovecot import Dovecot
from loadkit.instances._postfix import Postfix, count_queue_listing, drain_queue, parse_relay
from loadkit.instances._sink import SinkProcess
from loadkit.instances._system import InstanceError, MissingPackages

SERVERS = {"postfix": Postfix, "dovecot": Dovecot, "apache": Apache}

__all__ = [
    "DYNAMIC_PATH",
    "SERVERS",
    "STATIC_FILES",
    "Apache",
    "Dovecot",
    "Instance",
    "InstanceError",
    "MissingPackages",
    "Postfix",
    "SinkProcess",
    "count_queue_listing",
    "drain_queue",
    "parse_relay",
    "parse_server_status",
]
