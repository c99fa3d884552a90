"""Self-signed certificates for tests: TLS servers on 127.0.0.1 and signing keys."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


def self_signed(
    common_name: str, *, dns: str | None = None, ip: str | None = None
) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """An RSA key and a certificate it signs for itself. With a DNS name or an IP address the
    certificate names it (subjectAltName) and may be trusted as its own CA, as a test's TLS
    server needs."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
    )
    alt: list[x509.GeneralName] = []
    if dns is not None:
        alt.append(x509.DNSName(dns))
    if ip is not None:
        alt.append(x509.IPAddress(ipaddress.ip_address(ip)))
    if alt:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(alt), critical=False
        ).add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    return key, builder.sign(key, hashes.SHA256())


def tls_files(
    directory: Path, name: str, *, dns: str | None = None, ip: str | None = None
) -> tuple[Path, Path]:
    """A self-signed certificate and its key as PEM files in `directory`: (cert, key)."""
    key, certificate = self_signed(name, dns=dns, ip=ip)
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
