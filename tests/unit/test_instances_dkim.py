"""What the two DKIM filters share (`loadkit.instances._dkim`): names, the key's files, instance.json's record.

No daemon is started here; tests/integration/test_dkim_*.py start the real ones.
"""

from __future__ import annotations

import json
import stat

import pytest

from loadkit.instances import InstanceError
from loadkit.instances._amavis import AmavisFilter
from loadkit.instances._dkim import DEFAULT_DOMAIN, DEFAULT_SELECTOR, DkimFilter, write_dkim_key
from loadkit.instances._opendkim import OpenDkimMilter


@pytest.mark.parametrize("make", [lambda folder: AmavisFilter(folder, "mail.example.test", "s2026"),
                                  lambda folder: OpenDkimMilter(folder, "verify", "mail.example.test", "s2026",
                                                                socket="unix")])
def test_a_filters_record_brings_back_the_same_filter(tmp_path, make):
    dkim = make(tmp_path / "dkim")
    assert isinstance(dkim, DkimFilter)
    dkim.key = write_dkim_key(dkim.folder, dkim.domain, dkim.selector)
    dkim.pid = 4321
    record = json.loads(json.dumps(dkim.describe()))  # as instance.json keeps it
    assert record["filter"] == dkim.filter_name and record["pid"] == 4321 and record["folder"] == str(dkim.folder)
    assert record["key"]["dns_name"] == "s2026._domainkey.mail.example.test"
    back = type(dkim).restore(record)
    assert back.describe() == record
    assert (back.domain, back.selector, back.key) == ("mail.example.test", "s2026", dkim.key)


def test_a_record_without_a_key_restores_the_default_names(tmp_path):
    back = OpenDkimMilter.restore({"filter": "opendkim", "folder": str(tmp_path), "pid": None, "key": None})
    assert (back.domain, back.selector, back.key, back.mode, back.socket) == (DEFAULT_DOMAIN, DEFAULT_SELECTOR,
                                                                              None, "sign", "inet")


def test_the_key_files_private_for_the_filter_public_for_the_sink(tmp_path):
    key = write_dkim_key(tmp_path, "loadkit.test", "loadkit")
    assert stat.S_IMODE(key.private_key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert key.public_key_path.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert key.txt_record().startswith("v=DKIM1;") and "p=" in key.txt_record()


@pytest.mark.parametrize(("domain", "selector", "said"), [
    ("localhost", "s", "--dkim-domain localhost: not a domain name"),
    ("loadkit.test", "bad selector", "--dkim-selector bad selector: not a DNS label"),
])
def test_names_dns_could_not_hold_are_one_line_for_either_filter(tmp_path, domain, selector, said):
    for make in (lambda: AmavisFilter(tmp_path, domain, selector), lambda: OpenDkimMilter(tmp_path, "sign", domain, selector)):
        with pytest.raises(InstanceError) as error:
            make()
        assert str(error.value) == said
