"""Certificates and keys for a TLS federation with authenticated SuperNodes.

Everything is made with ``cryptography``:

- a certificate authority (``ca.crt``/``ca.key``) that SuperNodes and the ``flwr`` CLI
  trust (``--root-certificates``, ``root-certificates``);
- the SuperLink's TLS certificate (``superlink.crt``/``superlink.key``), signed by the
  CA, valid for the host names and IP addresses SuperNodes dial;
- one P-384 key pair per SuperNode in OpenSSH format, the format
  ``flwr supernode register`` and ``flower-supernode --auth-supernode-private-key`` read.

Private keys are written with mode 0600. Existing files are kept, so a second call
reuses the CA and the node identities (a restarted SuperNode keeps its node id).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 365


@dataclass(frozen=True)
class ServerCerts:
    """Paths of the CA certificate and the SuperLink's certificate and key."""

    ca_cert: Path
    cert: Path
    key: Path


@dataclass(frozen=True)
class NodeKeys:
    """Paths of one SuperNode's OpenSSH key pair."""

    private: Path
    public: Path


def _write_private(path: Path, key: ec.EllipticCurvePrivateKey, fmt: str = "pem") -> None:
    encoding = (
        serialization.PrivateFormat.OpenSSH if fmt == "ssh" else (serialization.PrivateFormat.PKCS8)
    )
    data = key.private_bytes(serialization.Encoding.PEM, encoding, serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as sink:
        sink.write(data)


def _load_private(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path}: not an EC private key")
    return key


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fedrobust"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _san(hosts: list[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def create_ca(directory: Path, name: str = "fedrobust CA") -> tuple[Path, Path]:
    """Create ``ca.crt`` and ``ca.key`` in ``directory`` unless both exist."""
    cert_path, key_path = directory / "ca.crt", directory / "ca.key"
    if cert_path.is_file() and key_path.is_file():
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP384R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA384())
    )
    _write_private(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def create_server_cert(directory: Path, hosts: list[str]) -> ServerCerts:
    """Create the CA (if missing) and a SuperLink certificate for ``hosts``.

    Parameters
    ----------
    directory : Path
        Where ``ca.crt``, ``ca.key``, ``superlink.crt`` and ``superlink.key`` go.
    hosts : list[str]
        Host names and IP addresses SuperNodes and the ``flwr`` CLI use to reach the
        SuperLink; each becomes a subject alternative name. A certificate that lacks
        one of them is replaced.
    """
    if not hosts:
        raise ValueError("at least one host name or IP address is needed")
    ca_cert_path, ca_key_path = create_ca(directory)
    cert_path, key_path = directory / "superlink.crt", directory / "superlink.key"
    if cert_path.is_file() and key_path.is_file() and set(hosts) <= set(cert_hosts(cert_path)):
        return ServerCerts(ca_cert_path, cert_path, key_path)
    ca_key = _load_private(ca_key_path)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
    key = ec.generate_private_key(ec.SECP384R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(_san(hosts), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA384())
    )
    _write_private(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return ServerCerts(ca_cert_path, cert_path, key_path)


def cert_hosts(cert_path: Path) -> list[str]:
    """The subject alternative names (DNS names and IP addresses) of a certificate."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(v) for v in san.get_values_for_type(x509.DNSName)] + [
        str(v) for v in san.get_values_for_type(x509.IPAddress)
    ]


def create_node_keys(directory: Path, name: str) -> NodeKeys:
    """Create (or reuse) the P-384 OpenSSH key pair ``name`` / ``name.pub``."""
    private, public = directory / name, directory / f"{name}.pub"
    if private.is_file() and public.is_file():
        return NodeKeys(private, public)
    key = ec.generate_private_key(ec.SECP384R1())
    _write_private(private, key, fmt="ssh")
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        + f" {name}\n".encode()
    )
    return NodeKeys(private, public)
