"""TLS for both listeners: the certificate files of ``tls_cert`` / ``tls_key`` / ``tls_client_ca`` read
and checked once at start-up, then handed to uvicorn (file paths) and grpcio (PEM bytes).

Checking up front turns every mistake (a missing or unreadable file, a key that does not match the
certificate, a file that is not PEM, an encrypted key) into one ``InvalidConfigError`` naming the setting
and the file, before anything listens, instead of an ``ssl.SSLError`` deep inside uvicorn's start-up or a
grpcio core log line. With ``tls_client_ca`` both ports require a client certificate issued by that CA.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from vecdb.config import Settings
from vecdb.errors import InvalidConfigError

__all__ = ["ServerTls", "load_server_tls"]


@dataclass(frozen=True, slots=True)
class ServerTls:
    """The server's certificate chain and key, and the CA of client certificates (mutual TLS) if any."""

    cert_path: Path
    key_path: Path
    client_ca_path: Path | None
    cert_pem: bytes
    key_pem: bytes = field(repr=False)  # never in a log line
    client_ca_pem: bytes | None = None

    @property
    def mutual(self) -> bool:
        return self.client_ca_pem is not None

    def uvicorn_options(self) -> dict[str, Any]:
        """Keyword arguments of ``uvicorn.Config``."""
        options: dict[str, Any] = {"ssl_certfile": str(self.cert_path), "ssl_keyfile": str(self.key_path)}
        if self.client_ca_path is not None:
            options["ssl_ca_certs"] = str(self.client_ca_path)
            options["ssl_cert_reqs"] = ssl.CERT_REQUIRED
        return options

    def grpc_credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.key_pem, self.cert_pem)],
            root_certificates=self.client_ca_pem,
            require_client_auth=self.mutual,
        )


def _read(setting: str, path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise InvalidConfigError(
            f"{setting}: cannot read {path}: {reason}", setting=setting, path=str(path)
        ) from exc
    if b"-----BEGIN " not in data:
        raise InvalidConfigError(
            f"{setting}: {path} is not a PEM file (no -----BEGIN line)", setting=setting, path=str(path)
        )
    return data


def load_server_tls(settings: Settings) -> ServerTls | None:
    """The TLS material of ``settings``, read and checked; None when TLS is off.

    Raises ``InvalidConfigError`` naming the setting and the file when a file cannot be read, is not PEM,
    holds no certificate, or the key does not match the certificate (or is encrypted). The pairing rules
    (cert and key together, a client CA only with both) are the ``Settings`` validator's.
    """
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    cert = _read("tls_cert", settings.tls_cert)
    key = _read("tls_key", settings.tls_key)
    client_ca = None if settings.tls_client_ca is None else _read("tls_client_ca", settings.tls_client_ca)
    key_path = settings.tls_key

    def no_password() -> bytes:
        # Without a callback OpenSSL would prompt on the terminal; grpcio cannot take a password anyway.
        raise InvalidConfigError(f"tls_key: {key_path} is encrypted; vecdb needs an unencrypted key file")

    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        probe.load_cert_chain(settings.tls_cert, key_path, password=no_password)
    except ssl.SSLError as exc:
        raise InvalidConfigError(
            f"tls_cert {settings.tls_cert} and tls_key {key_path} are not a certificate and its private key "
            f"({exc.reason or exc})",
            cert=str(settings.tls_cert),
            key=str(key_path),
        ) from exc
    if client_ca is not None:
        try:
            probe.load_verify_locations(cadata=client_ca.decode("ascii", "replace"))
        except ssl.SSLError as exc:
            raise InvalidConfigError(
                f"tls_client_ca: {settings.tls_client_ca} holds no usable CA certificate "
                f"({exc.reason or exc})",
                setting="tls_client_ca",
                path=str(settings.tls_client_ca),
            ) from exc
    return ServerTls(
        cert_path=settings.tls_cert,
        key_path=settings.tls_key,
        client_ca_path=settings.tls_client_ca,
        cert_pem=cert,
        key_pem=key,
        client_ca_pem=client_ca,
    )
