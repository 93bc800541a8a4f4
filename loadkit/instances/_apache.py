"""A private Apache on loopback: static files of known sizes, a CGI page, mod_status.

``apache2 -f STATE/httpd.conf -k start`` with ServerRoot, PidFile,
DefaultRuntimeDir, ErrorLog and CustomLog in the state folder; modules are
loaded from the distribution's module folder, the event MPM included, so
nothing under /etc/apache2 is read. Started as root, workers run as
www-data (as on Debian); otherwise as the caller.

What it serves, for load tests to ask for:

    /1k.bin /10k.bin /100k.bin /1m.bin   incompressible files of 1 KiB .. 1 MiB
    /index.html                          a small page
    /cgi-bin/hello                       a shell CGI: a process per request
    /server-status?auto                  mod_status, ExtendedStatus On
"""

from __future__ import annotations

import os
import random
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

PACKAGES = ["apache2"]
MODULE_DIR = "/usr/lib/apache2/modules"
MODULES = {  # module name -> file in MODULE_DIR
    "mpm_event_module": "mod_mpm_event.so",
    "authz_core_module": "mod_authz_core.so",
    "authz_host_module": "mod_authz_host.so",
    "mime_module": "mod_mime.so",
    "dir_module": "mod_dir.so",
    "alias_module": "mod_alias.so",
    "status_module": "mod_status.so",
    "cgid_module": "mod_cgid.so",
}
STATIC_FILES = {"1k.bin": 1024, "10k.bin": 10 * 1024, "100k.bin": 100 * 1024, "1m.bin": 1024 * 1024}
DYNAMIC_PATH = "/cgi-bin/hello"
STATUS_PATH = "/server-status"
WORKER_USERS = ("www-data", "apache", "daemon")  # Debian's, Red Hat's, Apache's default

HELLO_CGI = """\
#!/bin/sh
# A dynamic page: a new process per request, its reply made at request time.
printf 'Content-Type: text/plain\\r\\nCache-Control: no-store\\r\\n\\r\\n'
printf 'hello from loadkit\\nquery: %s\\npid: %s\\n' "$QUERY_STRING" "$$"
"""

INDEX_HTML = """\
<!doctype html>
<title>loadkit test instance</title>
<p>Static files: 1k.bin 10k.bin 100k.bin 1m.bin; dynamic: /cgi-bin/hello; status: /server-status?auto</p>
"""


def parse_server_status(text: str) -> dict:
    """mod_status's ``?auto`` page -> {"Total Accesses": 12, "Scoreboard": "__W_...", ...}.

    Numbers become int or float; the Scoreboard and names stay strings.
    """
    status: dict = {}
    for line in text.splitlines():
        name, colon, value = line.partition(":")
        if not colon:
            continue
        value = value.strip()
        try:
            status[name.strip()] = int(value)
        except ValueError:
            try:
                status[name.strip()] = float(value)
            except ValueError:
                status[name.strip()] = value
    return status


class Apache(Instance):
    """Apache httpd on ``127.0.0.1:port`` with known static files, a CGI and mod_status.

    ::

        with Apache(state_dir) as apache:
            urllib.request.urlopen(apache.base_url + "/1k.bin")
            apache.static_files            # {"/1k.bin": 1024, ...}
            apache.status_url               # .../server-status?auto
    """

    server = "apache"

    def __init__(self, state_dir, port: int = 0):
        super().__init__(state_dir, port)
        self.version: str | None = None
        self.master_pid: int | None = None
        self.worker_user: str | None = None

    # -- where things are -------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def status_url(self) -> str:
        return f"{self.base_url}{STATUS_PATH}?auto"

    @property
    def dynamic_url(self) -> str:
        return self.base_url + DYNAMIC_PATH

    @property
    def static_files(self) -> dict[str, int]:
        """URL path -> size in bytes of each static file."""
        return {f"/{name}": size for name, size in STATIC_FILES.items()}

    @property
    def config_path(self) -> Path:
        return self.path("httpd.conf")

    @property
    def docroot(self) -> Path:
        return self.path("htdocs")

    @property
    def log_path(self) -> Path:
        """The error log."""
        return self.path("log", "error.log")

    @property
    def access_log_path(self) -> Path:
        return self.path("log", "access.log")

    @property
    def pid_path(self) -> Path:
        return self.path("run", "httpd.pid")

    # -- lifecycle ------------------------------------------------------------------

    def _program(self) -> str:
        return find_program("apache2", PACKAGES, "Apache")

    def _check_installed(self) -> None:
        self._program()
        for filename in MODULES.values():
            require_file(f"{MODULE_DIR}/{filename}", PACKAGES, f"Apache's {filename}")
        banner = run_command([self._program(), "-v"], "apache2 -v")
        self.version = next((line.split(":", 1)[1].strip() for line in banner.splitlines()
                             if line.startswith("Server version")), None)

    def _start(self) -> None:
        self.port = choose_port(self.requested_port, self.host)
        if is_root():
            self.worker_user = next((name for name in WORKER_USERS if _has_user(name)), None)
            if self.worker_user is None:
                raise InstanceError(f"no user to run Apache's workers as (looked for {', '.join(WORKER_USERS)})")
            check_reachable(self.state_dir, self.worker_user)
        self.make_dirs("run", "log", "htdocs", "cgi-bin")
        self._write_documents()
        (self.path("mime.types")).write_text("text/html html\ntext/plain txt\napplication/octet-stream bin\n")
        self.config_path.write_text(self._config())
        apache2 = self._program()
        try:
            run_command([apache2, "-f", str(self.config_path), "-k", "start"], "apache did not start",
                        timeout=START_TIMEOUT)
        except InstanceError as error:
            raise InstanceError(self._error_from_log() or str(error)) from None
        if not wait_until(lambda: listens(self.host, self.port) and read_pid(self.pid_path), START_TIMEOUT):
            raise InstanceError(
                self._error_from_log() or f"apache does not listen on {self.host}:{self.port} after {START_TIMEOUT:.0f}s"
            )
        self.master_pid = read_pid(self.pid_path)

    def _write_documents(self) -> None:
        noise = random.Random(5)  # incompressible bytes, the same every run
        for name, size in STATIC_FILES.items():
            (self.docroot / name).write_bytes(noise.randbytes(size))
        (self.docroot / "index.html").write_text(INDEX_HTML)
        script = self.path("cgi-bin", "hello")
        script.write_text(HELLO_CGI)
        os.chmod(script, 0o755)

    def _error_from_log(self) -> str | None:
        for line in reversed(tail(self.log_path, 50)):
            if ":emerg]" in line or ":error]" in line or ":crit]" in line or ":alert]" in line:
                return "apache did not start: " + line.rsplit("] ", 1)[-1]
        return None

    def _config(self) -> str:
        state = self.state_dir
        modules = "\n".join(f"LoadModule {name} {MODULE_DIR}/{file}" for name, file in MODULES.items())
        user = f"User {self.worker_user}\nGroup {_primary_group(self.worker_user)}\n" if self.worker_user else ""
        return f"""\
# A loadkit test instance: loopback only, everything under {state}
ServerRoot "{state}"
ServerName {self.host}
Listen {self.host}:{self.port}
PidFile "{self.pid_path}"
DefaultRuntimeDir "{self.path('run')}"
ErrorLog "{self.log_path}"
LogLevel warn
{modules}
{user}TypesConfig "{self.path('mime.types')}"
ScriptSock "{self.path('run', 'cgid.sock')}"
LogFormat "%h %l %u %t \\"%r\\" %>s %b %D" loadkit
CustomLog "{self.access_log_path}" loadkit

StartServers 2
ServerLimit 16
ThreadsPerChild 25
MaxRequestWorkers 400
KeepAlive On
MaxKeepAliveRequests 1000
KeepAliveTimeout 5

DocumentRoot "{self.docroot}"
DirectoryIndex index.html
<Directory />
    AllowOverride None
    Require all denied
</Directory>
<Directory "{self.docroot}">
    Options None
    Require all granted
</Directory>
ScriptAlias /cgi-bin/ "{self.path('cgi-bin')}/"
<Directory "{self.path('cgi-bin')}">
    Options None
    Require all granted
</Directory>

ExtendedStatus On
<Location {STATUS_PATH}>
    SetHandler server-status
    Require ip 127.0.0.1 ::1
</Location>
"""

    def _stop(self, timeout: float) -> None:
        # SIGTERM is what `apache2 -k stop` sends
        stop_daemon(self.master_pid or read_pid(self.pid_path), timeout, str(self.config_path))

    def _running(self) -> bool:
        return is_alive(self.master_pid or read_pid(self.pid_path), expect=str(self.config_path))

    def _describe(self) -> dict:
        return {
            "version": self.version,
            "base_url": self.base_url if self.port else None,
            "status_url": self.status_url if self.port else None,
            "dynamic_url": self.dynamic_url if self.port else None,
            "static_files": self.static_files,
            "worker_user": self.worker_user,
            "master_pid": self.master_pid,
            "config": str(self.config_path),
            "docroot": str(self.docroot),
            "log": str(self.log_path),
            "access_log": str(self.access_log_path),
        }

    def _restore(self, info: dict) -> None:
        self.version = info.get("version")
        self.master_pid = info.get("master_pid")
        self.worker_user = info.get("worker_user")

    def summary_lines(self) -> list[str]:
        return [
            f"apache: {self.base_url}/ (static {', '.join(self.static_files)}; dynamic {DYNAMIC_PATH})",
            f"  status: {self.status_url}",
            f"  state folder: {self.state_dir}",
            f"  logs: {self.log_path}, {self.access_log_path}",
        ]


def _has_user(name: str) -> bool:
    try:
        user_ids(name)
        return True
    except InstanceError:
        return False


def _primary_group(user: str) -> str:
    return group_name(user_ids(user)[1])
