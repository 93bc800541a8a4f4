"""A real Apache instance (``loadkit.instances.Apache``): files, CGI and mod_status over HTTP.

Apache is the peer: sizes come from its responses, request counts from its
own mod_status and access log.
"""

from __future__ import annotations

import time
import urllib.request

import pytest

from loadkit.instances import Apache, parse_server_status
from loadkit.instances._system import is_alive, listens, wait_until
from tests.integration.test_instance_cli import instance_root, listening_addresses  # noqa: F401  (fixture)

pytestmark = pytest.mark.peer("apache2")


@pytest.fixture
def apache(peer, instance_root):
    peer("apache2")
    with Apache(instance_root / "apache") as instance:
        yield instance


def get(url: str) -> tuple[int, dict, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, dict(response.headers), response.read()


def test_static_files_have_their_sizes(apache):
    assert set(apache.static_files) == {"/1k.bin", "/10k.bin", "/100k.bin", "/1m.bin"}
    for path, size in apache.static_files.items():
        status, headers, body = get(apache.base_url + path)
        assert (status, len(body), int(headers["Content-Length"])) == (200, size, size), path
        assert headers["Content-Type"] == "application/octet-stream"
    status, _, body = get(apache.base_url + "/")
    assert status == 200 and b"loadkit" in body


def test_the_cgi_page_is_made_per_request(apache):
    _, headers, first = get(apache.dynamic_url + "?n=1")
    _, _, second = get(apache.dynamic_url + "?n=2")
    assert headers["Content-Type"].startswith("text/plain")
    assert b"query: n=1" in first and b"query: n=2" in second
    pid = [line for line in first.splitlines() if line.startswith(b"pid: ")]
    assert pid and pid != [line for line in second.splitlines() if line.startswith(b"pid: ")]


def test_server_status_counts_the_requests_apache_served(apache):
    before = parse_server_status(get(apache.status_url)[2].decode())
    for _ in range(10):
        get(apache.base_url + "/1k.bin")
    # A request is counted after its response went out, so a status page
    # counts the status pages before it, and may lag behind by a moment.
    status_pages = 1
    deadline = time.monotonic() + 5
    while True:
        after = parse_server_status(get(apache.status_url)[2].decode())
        expected = before["Total Accesses"] + 10 + status_pages
        assert after["Total Accesses"] <= expected
        if after["Total Accesses"] == expected or time.monotonic() > deadline:
            break
        status_pages += 1
        time.sleep(0.05)
    assert after["Total Accesses"] == expected
    assert after["BusyWorkers"] >= 1 and after["IdleWorkers"] >= 1
    assert after["ServerMPM"] == "event"
    scoreboard = after["Scoreboard"]
    assert set(scoreboard) <= set("_SRWKDCLGI.") and scoreboard.count("W") >= 1
    assert len(scoreboard) >= after["BusyWorkers"] + after["IdleWorkers"]
    served = '"GET /1k.bin HTTP/1.1" 200 1024'
    assert wait_until(lambda: apache.access_log_path.read_text().count(served) >= 10, 5)
    assert apache.access_log_path.read_text().count(served) == 10


def test_listens_on_loopback_only_and_stops(peer, instance_root):
    peer("apache2")
    apache = Apache(instance_root / "apache").start()
    pid, port = apache.master_pid, apache.port
    assert listening_addresses(port) == {"127.0.0.1"} and is_alive(pid)
    Apache.from_state(instance_root / "apache").stop()
    assert not is_alive(pid) and not listens("127.0.0.1", port) and not apache.is_running()
