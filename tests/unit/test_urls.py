"""Targets: Locust host URLs, smtp-source endpoints and smtp-sink listen addresses."""

from __future__ import annotations

import pytest

from loadkit.urls import Target, TargetError, parse_endpoint, parse_listen, parse_url

# -- parse_url ------------------------------------------------------------


@pytest.mark.parametrize("url, protocol, host, port", [
    ("smtp://127.0.0.1:2525", "smtp", "127.0.0.1", 2525),
    ("smtp://127.0.0.1", "smtp", "127.0.0.1", 25),
    ("smtp://mx.example.com", "smtp", "mx.example.com", 25),
    ("smtp://127.0.0.1:", "smtp", "127.0.0.1", 25),
    ("lmtp://127.0.0.1:2424", "lmtp", "127.0.0.1", 2424),
    ("lmtp://127.0.0.1", "lmtp", "127.0.0.1", 24),
    ("smtp://[::1]:2525", "smtp", "::1", 2525),
    ("lmtp://[::1]", "lmtp", "::1", 24),
    ("smtp://[2001:db8::25]:25", "smtp", "2001:db8::25", 25),
    ("smtp://localhost:0", "smtp", "localhost", 0),
    ("smtp://localhost:65535", "smtp", "localhost", 65535),
])
def test_parse_url_host_and_port(url, protocol, host, port):
    target = parse_url(url)
    assert target == Target(protocol, host=host, port=port)
    assert target.address == (host, port)
    assert not target.is_unix


@pytest.mark.parametrize("url, protocol, path", [
    ("lmtp+unix:///run/dovecot/lmtp", "lmtp", "/run/dovecot/lmtp"),
    ("smtp+unix:///var/spool/postfix/public/smtp", "smtp", "/var/spool/postfix/public/smtp"),
    ("lmtp+unix:///tmp/with%20space", "lmtp", "/tmp/with space"),
])
def test_parse_url_unix_socket(url, protocol, path):
    target = parse_url(url)
    assert target == Target(protocol, path=path)
    assert target.is_unix
    assert target.address == path


@pytest.mark.parametrize("url, tls, port", [
    ("smtps://mx.example.com", "implicit", 465),
    ("smtps://mx.example.com:10465", "implicit", 10465),
    ("submission://mx.example.com", "starttls", 587),
    ("smtp://mx.example.com", "", 25),
])
def test_parse_url_tls_schemes(url, tls, port):
    target = parse_url(url)
    assert (target.protocol, target.tls, target.port) == ("smtp", tls, port)


def test_parse_url_credentials_are_parsed_and_kept_out_of_printed_forms():
    target = parse_url("submission://load%40example.com:s3cr%3At@mx.example.com")
    assert (target.username, target.password) == ("load@example.com", "s3cr:t")
    assert (target.host, target.port) == ("mx.example.com", 587)
    for shown in (target.url(), str(target), repr(target)):
        assert "s3cr" not in shown


@pytest.mark.parametrize("url", [
    "smtp://127.0.0.1:2525",
    "lmtp://[::1]:24",
    "smtps://mx.example.com:465",
    "submission://mx.example.com:587",
    "lmtp+unix:///run/dovecot/lmtp",
    "smtp+unix:///tmp/smtp.sock",
])
def test_url_round_trips(url):
    assert parse_url(url).url() == url
    assert str(parse_url(url)) == url
    assert parse_url(parse_url(url).url()) == parse_url(url)


def test_url_spells_out_the_default_port():
    assert parse_url("lmtp://[::1]").url() == "lmtp://[::1]:24"


@pytest.mark.parametrize("url, message", [
    (None, "no host given: pass one with -H"),
    ("", "no host given: pass one with -H"),
    ("http://127.0.0.1", "unsupported host 'http://127.0.0.1'"),
    ("127.0.0.1:25", "unsupported host '127.0.0.1:25'"),
    ("smtp:/127.0.0.1", "unsupported host"),
    ("lmtp+tcp://127.0.0.1", "unsupported host"),
    ("smtp://127.0.0.1:99999", "smtp://127.0.0.1:99999: Port out of range 0-65535"),
    ("smtp://127.0.0.1:abc", "smtp://127.0.0.1:abc: Port could not be cast to integer value as 'abc'"),
    ("smtp://127.0.0.1:-1", "smtp://127.0.0.1:-1: Port"),
    ("smtp://", "smtp://: no host name"),
    ("smtp://:2525", "smtp://:2525: no host name"),
    ("lmtp+unix://run/dovecot/lmtp", "a unix socket URL needs an absolute path"),
    ("lmtp+unix://", "a unix socket URL needs an absolute path"),
])
def test_parse_url_bad_input_says_why(url, message):
    with pytest.raises(TargetError) as caught:
        parse_url(url)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_parse_url_hides_the_password_in_errors():
    with pytest.raises(TargetError) as caught:
        parse_url("smtp://user:s3cret@mx.example.com:abc")
    assert "s3cret" not in str(caught.value)
    assert "mx.example.com:abc" in str(caught.value)


def test_target_error_is_a_value_error():
    assert issubclass(TargetError, ValueError)


@pytest.mark.parametrize("url", ["smtp://[::1", "smtp://[::1:25", "smtp://[not-an-address]:25"])
def test_parse_url_bad_bracketed_host_is_a_target_error(url):
    with pytest.raises(TargetError):
        parse_url(url)


def test_parse_url_hides_the_password_when_the_scheme_is_wrong():
    with pytest.raises(TargetError) as caught:
        parse_url("smpt://user:s3cret@mx.example.com")
    assert "s3cret" not in str(caught.value)


# -- parse_endpoint (smtp-source) -----------------------------------------


@pytest.mark.parametrize("text, protocol, expected", [
    ("127.0.0.1:2525", "smtp", Target("smtp", host="127.0.0.1", port=2525)),
    ("inet:127.0.0.1:2525", "smtp", Target("smtp", host="127.0.0.1", port=2525)),
    ("mx.example.com", "smtp", Target("smtp", host="mx.example.com", port=25)),
    ("mx.example.com", "lmtp", Target("lmtp", host="mx.example.com", port=24)),
    ("[::1]:2525", "smtp", Target("smtp", host="::1", port=2525)),
    ("[::1]", "lmtp", Target("lmtp", host="::1", port=24)),
    ("inet:[::1]:24", "lmtp", Target("lmtp", host="::1", port=24)),
    ("::1", "smtp", Target("smtp", host="::1", port=25)),
    ("unix:/var/run/lmtp", "lmtp", Target("lmtp", path="/var/run/lmtp")),
    ("unix:public/smtp", "smtp", Target("smtp", path="public/smtp")),  # smtp-source takes relative paths
])
def test_parse_endpoint(text, protocol, expected):
    assert parse_endpoint(text, protocol) == expected


@pytest.mark.parametrize("text, message", [
    ("unix:", "unix:: no socket path"),
    ("127.0.0.1:abc", "127.0.0.1:abc: port 'abc' is not a number"),
    ("127.0.0.1:", "127.0.0.1:: port '' is not a number"),
    ("127.0.0.1:-25", "port '-25' is not a number"),
    ("127.0.0.1:65536", "127.0.0.1:65536: port 65536 is out of range (0-65535)"),
    (":2525", ":2525: no host name"),
    ("", "no host name"),
    ("inet:", "no host name"),
    ("[::1", "[::1: missing ']' after an IPv6 address"),
    ("[::1]2525", "[::1]2525: expected ':port' after ']'"),
    ("[::1]:x", "port 'x' is not a number"),
])
def test_parse_endpoint_bad_input_says_why(text, message):
    with pytest.raises(TargetError) as caught:
        parse_endpoint(text)
    assert message in str(caught.value)


def test_parse_endpoint_non_ascii_digit_port_is_a_target_error():
    with pytest.raises(TargetError):
        parse_endpoint("127.0.0.1:²")


# -- parse_listen (smtp-sink) ---------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("2525", Target("smtp", host="127.0.0.1", port=2525)),
    (":2525", Target("smtp", host="127.0.0.1", port=2525)),
    ("inet:2525", Target("smtp", host="127.0.0.1", port=2525)),
    ("127.0.0.1:0", Target("smtp", host="127.0.0.1", port=0)),
    ("0.0.0.0:25", Target("smtp", host="0.0.0.0", port=25)),
    ("[::1]:2525", Target("smtp", host="::1", port=2525)),
    ("inet:[::]:2525", Target("smtp", host="::", port=2525)),
    ("unix:/tmp/sink.sock", Target("smtp", path="/tmp/sink.sock")),
])
def test_parse_listen(text, expected):
    assert parse_listen(text) == expected


def test_parse_listen_protocol_and_default_host():
    assert parse_listen("2424", "lmtp", default_host="::1") == Target("lmtp", host="::1", port=2424)
    assert parse_listen("unix:/tmp/lmtp.sock", "lmtp") == Target("lmtp", path="/tmp/lmtp.sock")


@pytest.mark.parametrize("text, message", [
    ("127.0.0.1", "127.0.0.1: no port; listen on [host]:port"),
    ("[::1]", "[::1]: no port"),
    ("::1", "::1: no port"),
    ("localhost:", "port '' is not a number"),
    ("127.0.0.1:http", "port 'http' is not a number"),
    ("70000", "70000: port 70000 is out of range (0-65535)"),
    ("unix:", "no socket path"),
    ("[::1:25", "missing ']'"),
])
def test_parse_listen_bad_input_says_why(text, message):
    with pytest.raises(TargetError) as caught:
        parse_listen(text)
    assert message in str(caught.value)
