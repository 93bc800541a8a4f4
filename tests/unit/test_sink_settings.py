"""`SinkSettings`: built once, from keywords or the command line, each mistake one message."""

from __future__ import annotations

import dataclasses

import pytest

from loadkit.sink import FaultPlan, Greylist, SinkError, SinkServer, SinkSettings
from loadkit.urls import Target


@pytest.mark.parametrize(
    "keywords, message",
    [
        ({"listen": "127.0.0.1:70000"}, "out of range"),
        ({"listen": "127.0.0.1"}, "no port"),
        ({"capabilities": ("PIPELINING", "XFOO")}, "unknown capabilities: XFOO"),
        ({"lmtp": True, "esmtp": False}, "-e cannot go with -L: LMTP has no HELO to fall back to"),
        ({"max_messages": 0}, "-M 0: must be at least 1"),
        ({"timeout": 0}, "-t 0: must be more than 0 seconds"),
        ({"backlog": 0}, "backlog 0: must be at least 1"),
        ({"max_size": -1}, "--size -1: must be 0 (no limit) or more"),
        ({"tls_key": "key.pem"}, "--tls-key needs --tls-cert"),
        ({"store_max": 3}, "--store-max needs --store"),
        ({"store": "mail", "store_max": 0}, "--store-max 0: must be at least 1"),
        ({"trace": False, "trace_log": "traces.log"}, "--trace-log needs the traces read: drop --no-trace"),
        ({"auth_mechanisms": ("PLAIN", "GSSAPI")}, "unknown AUTH mechanism GSSAPI: use PLAIN, LOGIN, CRAM-MD5"),
    ],
)
def test_each_mistake_is_one_message(keywords, message):
    keywords = {"listen": "127.0.0.1:0", **keywords}
    with pytest.raises(SinkError) as caught:
        SinkSettings(**keywords)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(SinkError) as through_the_server:  # the server's keywords are the settings'
        SinkServer(keywords.pop("listen"), **keywords)
    assert str(through_the_server.value) == str(caught.value)


def test_normal_forms_are_settled_once():
    settings = SinkSettings("2525", greylist=5, auth_mechanisms=("plain", "cram-md5"), faults=FaultPlan())
    assert settings.listen == Target("smtp", host="127.0.0.1", port=2525)
    assert settings.lmtp is False and settings.auth_plaintext is True  # loopback: every client is local
    assert isinstance(settings.greylist, Greylist) and settings.greylist.delay == 5.0
    assert settings.auth_mechanisms == ("PLAIN", "CRAM-MD5")
    assert settings.faults is None  # an empty plan keeps the fast loop
    assert SinkSettings("0.0.0.0:0").auth_plaintext is False
    assert SinkSettings(Target("lmtp", path="/tmp/x.sock")).lmtp is True  # as the target says
    implicit = SinkSettings("127.0.0.1:0", implicit_tls=True)
    assert implicit.listen.tls == "implicit"
    assert SinkSettings("127.0.0.1:0", lmtp=True, implicit_tls=True).listen.tls == ""  # no lmtps://


def test_frozen_and_taken_whole_by_the_server():
    settings = SinkSettings("127.0.0.1:0", hostname="mx.test", max_messages=5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.max_messages = 6
    server = SinkServer(settings)
    assert server.settings is settings and server.target == settings.listen
    assert server.profile.hostname == "mx.test" and server.profile.max_messages == 5
    assert SinkServer("127.0.0.1:0", hostname="mx.test", max_messages=5).settings == settings
    with pytest.raises(TypeError):
        SinkServer(settings, lmtp=True)
