"""``loadkit target``: start, stop and look at real servers on loopback.

    loadkit target postfix|dovecot|apache up     [--dir DIR] [--port PORT]
    loadkit target postfix up [--deliver lmtp:127.0.0.1:PORT] [--sasl SOCKET] [--set NAME=VALUE ...]
                              [--dkim amavis|opendkim [--dkim-mode sign|verify] [--dkim-socket inet|unix]
                               [--dkim-domain DOMAIN] [--dkim-selector SELECTOR]]
    loadkit target postfix|dovecot|apache status [--dir DIR] [--json]
    loadkit target postfix|dovecot|apache down   [--dir DIR]

--dir DIR        the state folder (default reports/instances/SERVER): config,
                 queue, sockets, logs and mail all live there; ``up`` starts
                 it afresh, ``status`` and ``down`` find the instance by it
--port PORT      the loopback port to listen on (default 0: a free one, printed)
--deliver WHERE  postfix only: deliver there instead of to a loadkit sink it
                 starts: smtp:HOST:PORT, lmtp:HOST:PORT, lmtp:unix:PATH or a
                 URL (smtp://, lmtp://, lmtp+unix://); loopback only
--sasl SOCKET    postfix only: offer AUTH, checked by this Dovecot auth socket
                 (a dovecot instance's run/auth-client: any user, its password)
--set NAME=VALUE postfix only: an extra main.cf parameter (repeatable)
--dkim FILTER    postfix only: DKIM in the path, started and stopped with it:
                 amavis (amavisd-new as a content filter: mail on a second,
                 submission port is signed, the plain port's verified) or
                 opendkim (a milter on the plain port); a new key each time,
                 its public half and TXT record in DIR/dkim/public/, which the
                 sink Postfix starts verifies with
--dkim-mode MODE opendkim: sign (default) or verify
--dkim-socket S  opendkim: the milter on a loopback port (inet, default) or a
                 unix socket in the state folder (unix: no delayed ACKs)
--dkim-domain D  the signing domain, d= (default loadkit.test)
--dkim-selector S
                 the selector, s= (default loadkit)
--json           status as JSON

``up`` prints the endpoints and writes them to DIR/instance.json; for
postfix, also the end-to-end run and the capacity search that go with it.
Exit status: 0 done (status: running), 2 bad input or a server that would
not start, 3 (status only) not running.
"""

from __future__ import annotations

import json
from pathlib import Path

from loadkit.errors import UsageError
from loadkit.instances import SERVERS, InstanceError, Postfix
from loadkit.instances._dkim import DEFAULT_DOMAIN, DEFAULT_SELECTOR, DKIM_FILTERS
from loadkit.instances._opendkim import MODES, SOCKETS

ACTIONS = ("up", "down", "status")
NOT_RUNNING = 3  # LSB init scripts' "program is not running"
DEFAULT_ROOT = Path("reports", "instances")


def _setting(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    # a line break would start another main.cf parameter
    if not equals or not name.strip() or any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise ValueError(text)
    return name.strip(), value.strip()


_setting.__name__ = "NAME=VALUE"  # argparse names the type in its error


def add_arguments(parser) -> None:
    parser.add_argument("server", choices=sorted(SERVERS), help="which server")
    parser.add_argument("action", choices=ACTIONS, help="start it, stop it, or say whether it runs")
    parser.add_argument("--dir", metavar="DIR", help="state folder (default: reports/instances/SERVER)")
    parser.add_argument("--port", type=int, default=0, metavar="PORT",
                        help="loopback port to listen on (default: a free one)")
    parser.add_argument("--deliver", metavar="WHERE",
                        help="postfix: deliver to this loopback next hop instead of a loadkit sink")
    parser.add_argument("--sasl", metavar="SOCKET",
                        help="postfix: offer AUTH, checked by this Dovecot auth socket (DIR/run/auth-client)")
    parser.add_argument("--set", dest="settings", type=_setting, action="append", default=[], metavar="NAME=VALUE",
                        help="postfix: an extra main.cf parameter (repeatable)")
    parser.add_argument("--dkim", choices=DKIM_FILTERS,
                        help="postfix: DKIM in the path: amavis (content filter) or opendkim (milter)")
    parser.add_argument("--dkim-mode", choices=MODES, help="postfix --dkim opendkim: sign (default) or verify")
    parser.add_argument("--dkim-socket", choices=SOCKETS,
                        help="postfix --dkim opendkim: the milter's socket, loopback inet (default) or unix")
    parser.add_argument("--dkim-domain", metavar="DOMAIN",
                        help=f"postfix --dkim: signing domain (default {DEFAULT_DOMAIN})")
    parser.add_argument("--dkim-selector", metavar="SELECTOR",
                        help=f"postfix --dkim: selector (default {DEFAULT_SELECTOR})")
    parser.add_argument("--json", action="store_true", help="status: print JSON")


def run(args) -> int:
    instance_class = SERVERS[args.server]
    for flag, value in (("--dir", args.dir), ("--deliver", args.deliver), ("--sasl", args.sasl)):
        if value is not None and not value.strip():
            raise UsageError(f"{flag} '': give a value, or leave the option out")
    state_dir = Path(args.dir) if args.dir else DEFAULT_ROOT / args.server
    postfix_only = args.deliver or args.settings or args.sasl
    if args.server != "postfix" and postfix_only:
        raise UsageError("--deliver, --sasl and --set are for postfix only")
    if args.action != "up" and (postfix_only or args.port):
        raise UsageError("--port, --deliver, --sasl and --set go with up")
    dkim_options = args.dkim_mode or args.dkim_socket or args.dkim_domain or args.dkim_selector
    if args.server != "postfix" and (args.dkim or dkim_options):
        raise UsageError("--dkim and its options are for postfix only")
    if args.action != "up" and (args.dkim or dkim_options):
        raise UsageError("--dkim and its options go with up")
    if dkim_options and not args.dkim:
        raise UsageError("--dkim-mode, --dkim-socket, --dkim-domain and --dkim-selector go with --dkim")
    if (args.dkim_mode or args.dkim_socket) and args.dkim != "opendkim":
        raise UsageError("--dkim-mode and --dkim-socket go with --dkim opendkim (amavis signs on its submission port)")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: out of range (0-65535)")
    if args.action == "up":
        return _up(instance_class, state_dir, args)
    if args.action == "down":
        instance, damage = instance_class.salvage(state_dir)
        done = _down(instance, args.server, state_dir)
        if damage:
            raise InstanceError(f"{damage}; stopped what it still names")
        return done
    instance = instance_class.from_state(state_dir)
    return _status(instance, args.server, state_dir, args.json)


def _up(instance_class, state_dir: Path, args) -> int:
    if instance_class is Postfix:
        instance = Postfix(state_dir, port=args.port, relay_to=args.deliver, settings=dict(args.settings),
                           sasl_socket=args.sasl, dkim=args.dkim, dkim_domain=args.dkim_domain or DEFAULT_DOMAIN,
                           dkim_selector=args.dkim_selector or DEFAULT_SELECTOR, dkim_mode=args.dkim_mode or "sign",
                           dkim_socket=args.dkim_socket or "inet")
    else:
        instance = instance_class(state_dir, port=args.port)
    instance.start()
    for line in instance.summary_lines():
        print(line)
    for line in next_steps(instance):
        print(line)
    print(f"  stop it with: loadkit target {args.server} down --dir {instance.state_dir}", flush=True)
    return 0


def next_steps(instance) -> list[str]:
    """The command lines that go with this instance: its state folder and probe already filled in."""
    if not isinstance(instance, Postfix):
        return []
    state = instance.state_dir
    host = instance.smtp_url
    return [
        "  end-to-end run (delivery time, lost mail, queue):",
        (f"    locust -f locustfiles/postfix_e2e.py -H {host} --headless -u 20 -r 20 -t 1m --rate 100 "
         f"--e2e-postfix-state {state} --probe postfix={state}"),
        "  capacity search (the highest rate whose limits hold):",
        (f"    loadkit capacity -f locustfiles/postfix_e2e.py -H {host} --slo 'p99<200ms' --slo 'error_ratio<0.1%' "
         f"--slo 'queue_growth<=2' --probe postfix={state} --locust-arg=--e2e-postfix-state={state}"),
    ]


def _down(instance, server: str, state_dir: Path) -> int:
    if instance is None:
        print(f"{server}: no instance in {state_dir}")
        return 0
    was_running = instance.is_running()
    instance.stop()
    print(f"{server}: stopped ({instance.state_dir})" if was_running else f"{server}: was not running ({instance.state_dir})")
    return 0


def _status(instance, server: str, state_dir: Path, as_json: bool) -> int:
    if instance is None:
        status = {"server": server, "running": False, "state_dir": str(state_dir.absolute())}
    else:
        status = instance.status()
    if as_json:
        print(json.dumps(status, indent=2))
    elif not status["running"]:
        print(f"{server}: not running ({status['state_dir']})")
    else:
        print(_status_line(instance, status))
    return 0 if status["running"] else NOT_RUNNING


def _status_line(instance, status: dict) -> str:
    if isinstance(instance, Postfix):
        queue = status.get("queue")
        queued = ("queue unknown" if queue is None else
                  f"queue {sum(queue.values())} (" + ", ".join(f"{k} {v}" for k, v in queue.items()) + ")")
        relay = f"sink {instance.relay_url} {'running' if status.get('sink_running') else 'NOT running'}" \
            if instance.sink is not None else instance.relay_url
        return f"postfix: running {instance.smtp_url} -> {relay}; {queued}"
    if status["server"] == "dovecot":
        return f"dovecot: running {instance.lmtp_url} and {instance.lmtp_socket_url}; {status.get('delivered', 0)} messages in maildirs"
    return f"apache: running {instance.base_url}/ (status {instance.status_url})"
