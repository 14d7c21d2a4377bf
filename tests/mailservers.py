"""Real SMTP servers on loopback for the tests: aiosmtpd with STARTTLS or implicit TLS and AUTH,
a certificate authority made on the fly, and a server that accepts and then stalls."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path: Path, key: Any, cert: x509.Certificate) -> None:
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.with_suffix(".pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


@dataclass
class Certificates:
    ca_file: Path  # the test CA: the product is told to trust it (MSC_EXTRA_CA_FILE)
    trusted: tuple[Path, Path]  # (cert, key) for localhost signed by that CA
    self_signed: tuple[Path, Path]  # (cert, key) for localhost signed by nobody we trust


def make_certificates(folder: Path) -> Certificates:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("msc-admin test CA"))
        .issuer_name(_name("msc-admin test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write(folder / "ca", ca_key, ca)

    def leaf(issuer_key: Any, issuer: x509.Name, stem: str) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name("localhost"))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
        )
        signer = issuer_key if issuer_key is not None else key
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False
        )
        cert = builder.sign(signer, hashes.SHA256())
        _write(folder / stem, key, cert)
        return folder / f"{stem}.pem", folder / f"{stem}.key"

    trusted = leaf(ca_key, ca.subject, "trusted")
    self_signed = leaf(None, _name("localhost"), "self-signed")
    return Certificates(ca_file=folder / "ca.pem", trusted=trusted, self_signed=self_signed)


@dataclass
class Received:
    messages: list[dict[str, Any]] = field(default_factory=list)
    auth_attempts: list[tuple[str, str]] = field(default_factory=list)


class _Handler:
    def __init__(self, received: Received) -> None:
        self.received = received

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.messages.append(
            {"from": envelope.mail_from, "to": list(envelope.rcpt_tos), "data": envelope.content}
        )
        return "250 2.0.0 Ok: queued"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SmtpServer:
    host: str
    port: int
    received: Received


class _ImplicitTLSController(Controller):
    def _trigger_server(self) -> None:  # aiosmtpd's own probe would not trust our test CA
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with (
            socket.create_connection((self.hostname, self.port), 2.0) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as sock,
        ):
            sock.recv(1024)


@contextmanager
def smtp_server(
    *,
    mode: str = "starttls",  # starttls | implicit | plain
    cert: tuple[Path, Path] | None = None,
    users: dict[str, str] | None = None,
) -> Iterator[SmtpServer]:
    received = Received()
    accounts = users or {}

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = data.login.decode(), data.password.decode()
        received.auth_attempts.append((mechanism, login))
        return AuthResult(success=accounts.get(login) == password, handled=False)

    context = None
    if cert is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    # With implicit TLS the session is encrypted below aiosmtpd, which does not know it: let it
    # offer AUTH there. A "plain" server offers AUTH without TLS, to prove we never use it.
    kwargs: dict[str, Any] = {
        "authenticator": authenticator,
        "auth_require_tls": mode == "starttls",
    }
    port = free_port()
    if mode == "starttls":
        controller: Controller = Controller(
            _Handler(received),
            hostname="127.0.0.1",
            port=port,
            tls_context=context,
            require_starttls=True,
            **kwargs,
        )
    elif mode == "implicit":
        controller = _ImplicitTLSController(
            _Handler(received), hostname="127.0.0.1", port=port, ssl_context=context, **kwargs
        )
    else:
        controller = Controller(_Handler(received), hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield SmtpServer(host="localhost", port=port, received=received)
    finally:
        controller.stop()


@contextmanager
def stalling_server() -> Iterator[SmtpServer]:
    """Accepts connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                held.append(conn)
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield SmtpServer(host="localhost", port=listener.getsockname()[1], received=Received())
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        listener.close()
