"""Credentials never reach a log, a results file or a report.

A recognisable password goes through every way loadkit takes one: ``loadkit
source --auth`` (accepted, refused, with PLAIN and LOGIN) and a locustfile
run against ``submission://alice:PASSWORD@host``, all against ``loadkit sink
--auth-users``. Then every file the runs left (results folder, Locust's CSV,
verdicts, the HTML report, the sink's counters) and every console output is
searched for the password and for the base64 forms AUTH PLAIN and LOGIN send.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

from tests.integration.peers import loadkit_sink

PASSWORD = "Pa55-UNIQUE-word"
USER = "alice"
LOCUSTFILE = '''
from locust import constant, task
from loadkit.users import SmtpUser


class Submitter(SmtpUser):
    wait_time = constant(0.05)
    tls_verify = False  # the sink's certificate is self-signed
    messages_per_connection = 5

    @task
    def send_mail(self):
        self.send("send")
'''


def secret_forms() -> list[bytes]:
    plain = PASSWORD.encode()
    return [
        plain,
        base64.b64encode(b"\0" + USER.encode() + b"\0" + plain),  # AUTH PLAIN
        base64.b64encode(USER.encode() + b"\0" + USER.encode() + b"\0" + plain),  # PLAIN with an authzid
        base64.b64encode(plain),  # AUTH LOGIN's second answer
        PASSWORD.replace("-", "%2D").encode(),  # percent-encoded in a URL
    ]


def run(*command: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *command], capture_output=True, timeout=timeout, cwd=cwd)


def test_a_password_appears_in_no_output_file_report_or_console(tmp_path):
    users = tmp_path / "users"
    users.write_text(f"{USER}:{PASSWORD}\n")
    (tmp_path / "submit.py").write_text(LOCUSTFILE)
    results = tmp_path / "results"
    outputs: list[subprocess.CompletedProcess] = []

    with loadkit_sink(tmp_path, "--auth-users", str(users), "--auth-mechanisms", "PLAIN,LOGIN") as (url, read_stats):
        endpoint = url.removeprefix("smtp://")
        tls = ("--starttls", "--tls-no-verify")
        outputs.append(run("-m", "loadkit", "source", *tls, "--auth", f"{USER}:{PASSWORD}", "-m", "20", "-c",
                           endpoint, cwd=tmp_path))
        outputs.append(run("-m", "loadkit", "source", *tls, "--auth", f"{USER}:{PASSWORD}", "--auth-mechanism",
                           "LOGIN", "-d", "-m", "10", endpoint, cwd=tmp_path))
        refused = run("-m", "loadkit", "source", *tls, "--auth", f"{USER}:{PASSWORD}x", "-A", "-m", "3",
                      endpoint, cwd=tmp_path)
        outputs.append(refused)
        outputs.append(run("-m", "locust", "-f", "submit.py", "-H", f"submission://{USER}:{PASSWORD}@{endpoint}",
                           "--headless", "-u", "2", "-r", "2", "-t", "3s", "--results", str(results),
                           "--check", "fail_ratio<0.01", "--loglevel", "DEBUG", cwd=tmp_path))
        stats = read_stats()

    assert outputs[0].returncode == 0 and outputs[1].returncode == 0, outputs[0].stderr + outputs[1].stderr
    assert refused.returncode == 1 and b"535 5.7.8 at AUTH" in refused.stdout
    assert outputs[3].returncode == 0, outputs[3].stderr[-2000:]
    folder = next(results.iterdir())
    outputs.append(run("-m", "loadkit", "report", str(folder), cwd=tmp_path))
    outputs.append(run("-m", "loadkit", "check", str(folder), "--check", "fail_ratio<0.01", cwd=tmp_path))
    assert outputs[4].returncode == 0 and (folder / "report.html").is_file(), outputs[4].stderr
    # AUTH really happened: on every session of the two source runs and of the locustfile's users
    assert stats["auth"]["ok"] >= 2 + 1 and stats["auth"]["failed"] == 3
    assert stats["messages"] >= 30

    written = [path for path in tmp_path.rglob("*") if path.is_file() and path not in (users, tmp_path / "submit.py")]
    assert {"run.json", "metrics.jsonl", "events.jsonl", "report.html", "locust_stats.csv",
            "verdicts.json", "sink-stats.json"} <= {path.name for path in written}
    leaks = [
        f"{where}: {form!r}"
        for form in secret_forms()
        for where, content in [(str(path), path.read_bytes()) for path in written]
        + [(f"console of {' '.join(map(str, done.args[1:4]))}", done.stdout + done.stderr) for done in outputs]
        if form in content
    ]
    assert leaks == []
    assert f"submission://{USER}:***@".encode() in (folder / "run.json").read_bytes()  # the target, still named
