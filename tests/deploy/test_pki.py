"""Certificates and node keys: a chain TLS clients accept, keys Flower's CLI reads."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fedrobust.deploy import pki
from fedrobust.deploy.pki import cert_hosts, create_node_keys, create_server_cert
from fedrobust.errors import FedrobustError


def test_superlink_certificate_is_signed_by_the_ca_for_every_host(tmp_path) -> None:
    certs = create_server_cert(tmp_path, ["127.0.0.1", "localhost", "edge.example"])
    ca = x509.load_pem_x509_certificate(certs.ca_cert.read_bytes())
    cert = x509.load_pem_x509_certificate(certs.cert.read_bytes())
    cert.verify_directly_issued_by(ca)  # raises when the signature or issuer is wrong
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert set(san.get_values_for_type(x509.DNSName)) == {"localhost", "edge.example"}
    for key in (certs.key, certs.ca_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert certs.ca_key.parent != certs.key.parent  # the CA's key stays apart
    assert not (tmp_path / "ca.key").exists()


def test_credentials_are_reused_and_a_missing_host_renews_the_certificate(tmp_path) -> None:
    first = create_server_cert(tmp_path, ["127.0.0.1"])
    ca_bytes, cert_bytes = first.ca_cert.read_bytes(), first.cert.read_bytes()
    assert create_server_cert(tmp_path, ["127.0.0.1"]).cert.read_bytes() == cert_bytes
    renewed = create_server_cert(tmp_path, ["127.0.0.1", "server.lan"])
    assert renewed.ca_cert.read_bytes() == ca_bytes  # same CA: devices keep trusting it
    assert renewed.cert.read_bytes() != cert_bytes
    assert set(cert_hosts(renewed.cert)) == {"127.0.0.1", "server.lan"}


def test_node_keys_are_p384_openssh_pairs_and_kept(tmp_path) -> None:
    keys = create_node_keys(tmp_path, "node-0")
    private = serialization.load_ssh_private_key(keys.private.read_bytes(), password=None)
    public = serialization.load_ssh_public_key(keys.public.read_bytes())
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert isinstance(private.curve, ec.SECP384R1)
    assert public.public_numbers() == private.public_key().public_numbers()  # type: ignore[union-attr]
    assert stat.S_IMODE(keys.private.stat().st_mode) == 0o600
    again = create_node_keys(tmp_path, "node-0")
    assert again.public.read_bytes() == keys.public.read_bytes()


def test_flower_accepts_our_public_key_for_registration(tmp_path) -> None:
    from flwr.cli.supernode.register import try_load_public_key

    keys = create_node_keys(tmp_path, "node-1")
    assert len(try_load_public_key(keys.public)) > 0


def test_a_certificate_needs_a_host(tmp_path) -> None:
    with pytest.raises(ValueError, match="host"):
        create_server_cert(tmp_path, [])


def _age(monkeypatch: pytest.MonkeyPatch, days: int) -> None:
    """Make pki believe ``days`` days have passed."""
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=days)
    monkeypatch.setattr(pki, "_now", lambda: later)


def test_credentials_keep_the_ca_key_in_its_own_directory(tmp_path: Path) -> None:
    from fedrobust.deploy.local import create_credentials

    creds = create_credentials(tmp_path, 1, ["127.0.0.1"], 9093)
    assert creds.certs.ca_key == tmp_path / "ca" / "ca.key"
    assert sorted(p.name for p in (tmp_path / "certs").iterdir()) == [
        "ca.crt", "superlink.crt", "superlink.key"
    ]  # fmt: skip
    assert creds.certs.ca_cert.read_bytes() == (tmp_path / "ca" / "ca.crt").read_bytes()


def test_an_older_layouts_ca_key_moves_out_and_stays_the_same_ca(tmp_path: Path) -> None:
    certs_dir = tmp_path / "certs"
    ca_cert, ca_key = pki.create_ca(certs_dir)  # the one-directory layout
    ca_bytes = ca_cert.read_bytes()
    certs = create_server_cert(certs_dir, ["127.0.0.1"], ca_dir=tmp_path / "ca")
    assert not ca_key.exists() and certs.ca_key == tmp_path / "ca" / "ca.key"
    assert certs.ca_cert.read_bytes() == ca_bytes


def test_a_certificate_near_expiry_is_renewed(tmp_path: Path, monkeypatch) -> None:
    first = create_server_cert(tmp_path / "certs", ["127.0.0.1"])
    old = first.cert.read_bytes()
    _age(monkeypatch, pki.VALID_DAYS - pki.RENEW_DAYS + 1)
    renewed = create_server_cert(tmp_path / "certs", ["127.0.0.1"])
    assert renewed.cert.read_bytes() != old
    cert = x509.load_pem_x509_certificate(renewed.cert.read_bytes())
    ca = x509.load_pem_x509_certificate(renewed.ca_cert.read_bytes())
    assert cert.not_valid_after_utc <= ca.not_valid_after_utc  # never outlives its CA


def test_an_expired_ca_is_refused_clearly(tmp_path: Path, monkeypatch) -> None:
    create_server_cert(tmp_path / "certs", ["127.0.0.1"])
    _age(monkeypatch, pki.VALID_DAYS + 1)
    with pytest.raises(FedrobustError) as info:
        create_server_cert(tmp_path / "certs", ["127.0.0.1"])
    assert info.value.where.endswith("ca.crt")
    assert "copy the new ca.crt to every device" in info.value.what


def test_a_certificate_from_another_ca_is_replaced(tmp_path: Path) -> None:
    ours = create_server_cert(tmp_path / "certs", ["127.0.0.1"])
    theirs = create_server_cert(tmp_path / "other", ["127.0.0.1"])
    os.replace(theirs.cert, ours.cert)  # a certificate someone else's CA signed
    os.replace(theirs.key, ours.key)
    fixed = create_server_cert(tmp_path / "certs", ["127.0.0.1"])
    ca = x509.load_pem_x509_certificate(fixed.ca_cert.read_bytes())
    x509.load_pem_x509_certificate(fixed.cert.read_bytes()).verify_directly_issued_by(ca)


@pytest.mark.parametrize("which", ["superlink.key", "node-0", "ca.key"])
def test_a_symlinked_private_key_is_refused_not_followed(tmp_path: Path, which: str) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(b"do not touch")
    place = {"superlink.key": tmp_path / "certs", "node-0": tmp_path / "keys"}.get(
        which, tmp_path / "certs-ca"
    )
    place.mkdir(parents=True)
    (place / which).symlink_to(target)
    with pytest.raises(FedrobustError, match="symbolic link"):
        if which == "node-0":
            create_node_keys(place, which)
        else:
            create_server_cert(tmp_path / "certs", ["127.0.0.1"])
    assert target.read_bytes() == b"do not touch"


def test_a_reused_private_key_is_tightened_to_0600(tmp_path: Path) -> None:
    certs = create_server_cert(tmp_path / "certs", ["127.0.0.1"])
    keys = create_node_keys(tmp_path / "keys", "node-0")
    for path in (certs.key, certs.ca_key, keys.private):
        path.chmod(0o644)
    create_server_cert(tmp_path / "certs", ["127.0.0.1"])
    create_node_keys(tmp_path / "keys", "node-0")
    for path in (certs.key, certs.ca_key, keys.private):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_a_mismatched_node_key_pair_is_refused(tmp_path: Path) -> None:
    create_node_keys(tmp_path, "node-0")
    other = create_node_keys(tmp_path, "node-1")
    os.replace(other.public, tmp_path / "node-0.pub")
    with pytest.raises(FedrobustError, match="not the public half"):
        create_node_keys(tmp_path, "node-0")
