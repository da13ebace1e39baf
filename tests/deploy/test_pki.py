"""Certificates and node keys: a chain TLS clients accept, keys Flower's CLI reads."""

from __future__ import annotations

import ipaddress
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fedrobust.deploy.pki import cert_hosts, create_node_keys, create_server_cert


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
    for key in (certs.key, tmp_path / "ca.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600


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
