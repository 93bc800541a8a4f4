"""``loadkit target``: start, stop and look at real servers on loopback.

    loadkit target postfix|dovecot|apache up     [--dir DIR] [--port PORT]
    loadkit target postfix up [--deliver lmtp:127.0.0.1:PORT] [--sasl SOCKET] [--set NAME=VALUE ...]
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
from loadkit.instances import SERVERS, Postfix

ACTIONS = ("up", "down", "status")
NOT_RUNNING = 3  # LSB init scripts' "program is not running"
DEFAULT_ROOT = Path("reports", "instances")


def _setting(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name.strip():
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
    parser.add_argument("--json", action="store_true", help="status: print JSON")


def run(args) -> int:
    instance_class = SERVERS[args.server]
    state_dir = Path(args.dir) if args.dir else DEFAULT_ROOT / args.server
    postfix_only = args.deliver or args.settings or args.sasl
    if args.server != "postfix" and postfix_only:
        raise UsageError("--deliver, --sasl and --set are for postfix only")
    if args.action != "up" and (postfix_only or args.port):
        raise UsageError("--port, --deliver, --sasl and --set go with up")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: out of range (0-65535)")
    if args.action == "up":
        return _up(instance_class, state_dir, args)
    instance = instance_class.from_state(state_dir)
    if args.action == "down":
        return _down(instance, args.server, state_dir)
    return _status(instance, args.server, state_dir, args.json)


def _up(instance_class, state_dir: Path, args) -> int:
    if instance_class is Postfix:
        instance = Postfix(state_dir, port=args.port, relay_to=args.deliver, settings=dict(args.settings),
                           sasl_socket=args.sasl)
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
