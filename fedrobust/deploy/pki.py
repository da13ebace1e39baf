"""Certificates and keys for a TLS federation with authenticated SuperNodes.

Everything is made with ``cryptography``:

- a certificate authority (``ca.crt``/``ca.key``) that SuperNodes and the ``flwr`` CLI
  trust (``--root-certificates``, ``root-certificates``). Its private key lives in a
  directory of its own (``create_credentials``: ``DIR/ca/``), apart from the SuperLink's
  files (``DIR/certs/``, which holds a copy of ``ca.crt`` only): ``certs/`` can go to the
  SuperLink's host without the key that could sign a certificate for any host. Keep
  ``ca/`` offline once the certificates exist;
- the SuperLink's TLS certificate (``superlink.crt``/``superlink.key``), signed by the
  CA, valid for the host names and IP addresses SuperNodes dial;
- one P-384 key pair per SuperNode in OpenSSH format, the format
  ``flwr supernode register`` and ``flower-supernode --auth-supernode-private-key`` read.

Private keys are always mode 0600 (written so, and tightened when an existing one is
looser) and are never read or written through a symbolic link. Existing files are
reused, so a second call keeps the CA and the node identities (a restarted SuperNode
keeps its node id), but only after checks: a CA that has expired, or whose key does not
match it, is refused (a new CA means copying ``ca.crt`` to every device again); a
SuperLink certificate that lacks a host, expires within ``RENEW_DAYS``, was not issued
by this CA, or does not match its key is renewed; a node key pair whose halves differ
is refused.
"""

from __future__ import annotations

import datetime as dt
import errno
import ipaddress
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fedrobust.errors import FedrobustError
from fedrobust.rundir import write_atomic

VALID_DAYS = 365
RENEW_DAYS = 30
PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644


@dataclass(frozen=True)
class ServerCerts:
    """Paths of the CA certificate and key and the SuperLink's certificate and key.

    ``ca_cert`` is the copy of the CA certificate beside the SuperLink's files (what the
    SuperLink and every device are given); ``ca_key`` sits in the CA's own directory.
    """

    ca_cert: Path
    cert: Path
    key: Path
    ca_key: Path


@dataclass(frozen=True)
class NodeKeys:
    """Paths of one SuperNode's OpenSSH key pair."""

    private: Path
    public: Path


def _refuse_symlink(path: Path) -> None:
    if path.is_symlink():
        raise FedrobustError(
            str(path), "is a symbolic link; key and certificate files must be regular files"
        )


def _write_file(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` with ``mode``: temp file, then rename (never via a link)."""
    _refuse_symlink(path)

    def write(sink: BinaryIO) -> None:
        os.fchmod(sink.fileno(), mode)  # the mode before a byte is written
        sink.write(data)

    write_atomic(path, write)


def _read_key_file(path: Path) -> bytes:
    """A private key file's bytes, never through a symbolic link; its mode becomes 0600."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            _refuse_symlink(path)
        raise
    with os.fdopen(fd, "rb") as source:
        info = os.fstat(source.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise FedrobustError(str(path), "is not a regular file")
        if stat.S_IMODE(info.st_mode) != PRIVATE_MODE:
            os.fchmod(source.fileno(), PRIVATE_MODE)
        return source.read()


def _write_private(path: Path, key: ec.EllipticCurvePrivateKey, fmt: str = "pem") -> None:
    encoding = (
        serialization.PrivateFormat.OpenSSH if fmt == "ssh" else (serialization.PrivateFormat.PKCS8)
    )
    data = key.private_bytes(serialization.Encoding.PEM, encoding, serialization.NoEncryption())
    _write_file(path, data, PRIVATE_MODE)


def _load_private(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(_read_key_file(path), password=None)
    except ValueError as exc:
        raise FedrobustError(str(path), f"unreadable private key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise FedrobustError(str(path), "not an EC private key")
    return key


def _load_cert(path: Path) -> x509.Certificate:
    _refuse_symlink(path)
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except ValueError as exc:
        raise FedrobustError(str(path), f"unreadable certificate ({exc})") from None


def _same_key(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> bool:
    return cert.public_key() == key.public_key()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


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
    """Create ``ca.crt`` and ``ca.key`` in ``directory`` unless both exist.

    Raises
    ------
    FedrobustError
        When the existing CA has expired, its key does not match it, or a file is a
        symbolic link.
    """
    cert_path, key_path = directory / "ca.crt", directory / "ca.key"
    _refuse_symlink(key_path)
    if cert_path.is_file() and key_path.is_file():
        cert, key = _load_cert(cert_path), _load_private(key_path)
        if not _same_key(cert, key):
            raise FedrobustError(str(key_path), f"is not the key of {cert_path}")
        if cert.not_valid_after_utc <= _now():
            raise FedrobustError(
                str(cert_path),
                f"the CA expired on {cert.not_valid_after_utc:%Y-%m-%d}: remove {directory} "
                "to create a new one, then copy the new ca.crt to every device",
            )
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP384R1())
    now = _now()
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
    _write_file(cert_path, cert.public_bytes(serialization.Encoding.PEM), PUBLIC_MODE)
    return cert_path, key_path


def create_server_cert(
    directory: Path, hosts: list[str], ca_dir: Path | None = None
) -> ServerCerts:
    """Create the CA (if missing) and a SuperLink certificate for ``hosts``.

    Parameters
    ----------
    directory : Path
        Where ``superlink.crt``, ``superlink.key`` and a copy of ``ca.crt`` go.
    hosts : list[str]
        Host names and IP addresses SuperNodes and the ``flwr`` CLI use to reach the
        SuperLink; each becomes a subject alternative name.
    ca_dir : Path, optional
        The CA's own directory (``ca.crt``, ``ca.key``); default ``<directory>-ca`` beside
        ``directory``. A ``ca.key`` left in ``directory`` by an older layout is moved there.

    An existing certificate is kept unless it lacks one of ``hosts``, expires within
    ``RENEW_DAYS`` days, was not issued by this CA or does not match its key: then it is
    renewed.
    """
    if not hosts:
        raise ValueError("at least one host name or IP address is needed")
    ca_dir = ca_dir or directory.with_name(f"{directory.name}-ca")
    _move_old_ca(directory, ca_dir)
    ca_cert_path, ca_key_path = create_ca(ca_dir)
    ca_cert = _load_cert(ca_cert_path)
    ca_copy = directory / "ca.crt"
    ca_bytes = ca_cert.public_bytes(serialization.Encoding.PEM)
    if not ca_copy.is_file() or ca_copy.is_symlink() or ca_copy.read_bytes() != ca_bytes:
        _write_file(ca_copy, ca_bytes, PUBLIC_MODE)
    cert_path, key_path = directory / "superlink.crt", directory / "superlink.key"
    _refuse_symlink(key_path)
    certs = ServerCerts(ca_copy, cert_path, key_path, ca_key_path)
    if _server_cert_usable(cert_path, key_path, hosts, ca_cert):
        return certs
    ca_key = _load_private(ca_key_path)
    key = ec.generate_private_key(ec.SECP384R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + dt.timedelta(days=VALID_DAYS), ca_cert.not_valid_after_utc))
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
    _write_file(cert_path, cert.public_bytes(serialization.Encoding.PEM), PUBLIC_MODE)
    return certs


def _move_old_ca(directory: Path, ca_dir: Path) -> None:
    """Move ``ca.key`` (and ``ca.crt``) of the older one-directory layout into ``ca_dir``."""
    old_key = directory / "ca.key"
    if not (old_key.exists() or old_key.is_symlink()) or (ca_dir / "ca.key").exists():
        return
    _refuse_symlink(old_key)
    _refuse_symlink(directory / "ca.crt")
    ca_dir.mkdir(parents=True, exist_ok=True)
    os.replace(directory / "ca.crt", ca_dir / "ca.crt")
    os.replace(old_key, ca_dir / "ca.key")


def _server_cert_usable(
    cert_path: Path, key_path: Path, hosts: list[str], ca_cert: x509.Certificate
) -> bool:
    """The existing SuperLink certificate serves ``hosts``, is ours, matches, and is fresh."""
    if not (cert_path.is_file() and key_path.is_file()):
        return False
    cert, key = _load_cert(cert_path), _load_private(key_path)
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    fresh = cert.not_valid_after_utc > _now() + dt.timedelta(days=RENEW_DAYS)
    return fresh and _same_key(cert, key) and set(hosts) <= set(cert_hosts(cert_path))


def cert_hosts(cert_path: Path) -> list[str]:
    """The subject alternative names (DNS names and IP addresses) of a certificate."""
    cert = _load_cert(cert_path)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(v) for v in san.get_values_for_type(x509.DNSName)] + [
        str(v) for v in san.get_values_for_type(x509.IPAddress)
    ]


def create_node_keys(directory: Path, name: str) -> NodeKeys:
    """Create (or reuse) the P-384 OpenSSH key pair ``name`` / ``name.pub``.

    Raises
    ------
    FedrobustError
        When the private key is a symbolic link or unreadable, or the existing public key
        is not its half (a node's identity is never replaced silently).
    """
    private, public = directory / name, directory / f"{name}.pub"
    _refuse_symlink(private)
    if private.is_file() and public.is_file():
        try:
            key = serialization.load_ssh_private_key(_read_key_file(private), password=None)
            theirs = serialization.load_ssh_public_key(public.read_bytes())
        except ValueError as exc:
            raise FedrobustError(str(private), f"unreadable key pair ({exc})") from None
        if key.public_key() != theirs:
            raise FedrobustError(str(public), f"is not the public half of {private}")
        return NodeKeys(private, public)
    key = ec.generate_private_key(ec.SECP384R1())
    _write_private(private, key, fmt="ssh")
    _write_file(
        public,
        key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        + f" {name}\n".encode(),
        PUBLIC_MODE,
    )
    return NodeKeys(private, public)
