"""Certificate expiry read from Caddy's storage layout."""

import os
import shutil
import subprocess
from datetime import UTC, datetime

import pytest

from tova.server.certs import find_certificate, parse_openssl_enddate, storage_name


def test_parse_enddate():
    got = parse_openssl_enddate("notAfter=May 29 12:00:00 2026 GMT\n")
    assert got == datetime(2026, 5, 29, 12, 0, tzinfo=UTC)
    assert parse_openssl_enddate("garbage") is None
    assert parse_openssl_enddate("notAfter=soon") is None


def test_storage_names_and_newest_wins(tmp_path):
    assert storage_name("*.example.com") == "wildcard_.example.com"
    old = tmp_path / "acme-v02" / "myapp.com" / "myapp.com.crt"
    new = tmp_path / "local" / "myapp.com" / "myapp.com.crt"
    for i, p in enumerate((old, new)):
        p.parent.mkdir(parents=True)
        p.write_text("x")
        os.utime(p, (1000 + i, 1000 + i))
    assert find_certificate([tmp_path, tmp_path / "absent"], "myapp.com") == new
    assert find_certificate([tmp_path], "other.com") is None


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_real_certificate_expiry(tmp_path):
    key, crt = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
                    "-days", "90", "-subj", "/CN=myapp.com"], check=True, capture_output=True)
    out = subprocess.run(
        ["openssl", "x509", "-enddate", "-noout", "-in", str(crt)], capture_output=True, text=True
    ).stdout
    days = (parse_openssl_enddate(out) - datetime.now(UTC)).days
    assert 88 <= days <= 90
