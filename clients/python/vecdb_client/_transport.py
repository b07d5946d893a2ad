"""Connection settings shared by both clients: where to connect, headers, TLS material, retry delays."""

from __future__ import annotations

import os
import random
import socket
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias
from urllib.parse import urlsplit

import grpc
import httpx

__all__ = ["DEFAULT_GRPC_PORT", "NO_DELAY", "Endpoint", "PemSource", "TlsFiles", "backoff_delay"]

DEFAULT_GRPC_PORT = 50051

#: Socket options of the REST connections: TCP_NODELAY (small requests are not held back by Nagle).
NO_DELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]

#: A PEM file's path (``str`` or ``os.PathLike``), or its contents (``bytes``, or a ``str`` that starts
#: with ``-----BEGIN``).
PemSource: TypeAlias = str | os.PathLike[str] | bytes


def _pem(name: str, source: PemSource) -> bytes:
    if isinstance(source, bytes):
        data = source
    elif isinstance(source, str) and source.lstrip().startswith("-----BEGIN "):
        data = source.encode("ascii", "replace")
    else:
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise ValueError(f"{name}: cannot read {source}: {exc.strerror or exc}") from exc
        if b"-----BEGIN " not in data:
            raise ValueError(f"{name}: {source} is not a PEM file (no -----BEGIN line)")
        return data
    if b"-----BEGIN " not in data:
        raise ValueError(f"{name}: the bytes given are not PEM (no -----BEGIN line)")
    return data


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """What a client trusts and presents over TLS, as PEM bytes read once when the client is made:
    ``ca_cert`` (None: the system's / certifi's roots), and for mutual TLS ``client_cert`` with
    ``client_key``; ``ssl_context`` is the same for httpx (``verify=``), built (and so checked) at once."""

    ca_cert: bytes | None
    client_cert: bytes | None
    client_key: bytes | None = field(repr=False)  # never in a log line or traceback
    ssl_context: ssl.SSLContext = field(repr=False, compare=False)

    @classmethod
    def load(
        cls, ca_cert: PemSource | None, client_cert: PemSource | None, client_key: PemSource | None
    ) -> TlsFiles | None:
        """None when all three are None. Raises ``ValueError`` naming the argument (and the file) when a
        file cannot be read or is not PEM, when the CA holds no certificate, when the key does not match
        the certificate (or is encrypted), or when only one of ``client_cert`` / ``client_key`` is given."""
        if ca_cert is None and client_cert is None and client_key is None:
            return None
        if (client_cert is None) != (client_key is None):
            raise ValueError("client_cert and client_key go together: give both or neither")
        ca = None if ca_cert is None else _pem("ca_cert", ca_cert)
        cert = None if client_cert is None else _pem("client_cert", client_cert)
        key = None if client_key is None else _pem("client_key", client_key)
        return cls(ca, cert, key, _ssl_context(ca, cert, key))

    def grpc_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(self.ca_cert, self.client_key, self.client_cert)


def _ssl_context(ca: bytes | None, cert: bytes | None, key: bytes | None) -> ssl.SSLContext:
    try:
        ctx = (
            httpx.create_ssl_context()
            if ca is None
            else ssl.create_default_context(cadata=ca.decode("ascii"))
        )
    except (ssl.SSLError, UnicodeDecodeError) as exc:
        raise ValueError(
            f"ca_cert holds no usable CA certificate ({getattr(exc, 'reason', None) or exc})"
        ) from exc
    if cert is not None and key is not None:
        # ssl loads a certificate chain from files only: a private folder (0700), deleted at once.
        with tempfile.TemporaryDirectory(prefix="vecdb-client-tls-") as folder:
            cert_path, key_path = Path(folder, "cert.pem"), Path(folder, "key.pem")
            for path, data in ((cert_path, cert), (key_path, key)):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
            try:
                ctx.load_cert_chain(cert_path, key_path, password=_no_password)
            except ssl.SSLError as exc:
                raise ValueError(
                    f"client_cert and client_key are not a certificate and its key ({exc.reason or exc})"
                ) from exc
    return ctx


def _no_password() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal; grpcio takes no password either.
    raise ValueError("client_key is encrypted: give an unencrypted key")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What a client connects to: REST base URL, or gRPC target (``host:port``) with or without TLS, and
    the TLS files (CA, client certificate) if any were given."""

    rest_url: str
    grpc_target: str | None
    grpc_tls: bool
    api_key: str | None
    tls: TlsFiles | None = None

    @classmethod
    def resolve(
        cls,
        url: str,
        grpc_url: str | None,
        prefer_grpc: bool | None,
        api_key: str | None,
        files: TlsFiles | None = None,
    ) -> Endpoint:
        """``grpc_url`` may be ``host:port``, ``grpc://host:port`` or ``grpcs://host:port`` (TLS); given,
        it means gRPC (``prefer_grpc`` None) and contradicts ``prefer_grpc=False``. With
        ``prefer_grpc`` and no ``grpc_url``, gRPC goes to ``url``'s host on port 50051. ``files`` need the
        transport in use to be TLS (``https://`` for REST; ``grpcs://``, or an ``https://`` url, for
        gRPC): TLS files for a plain connection is a mistake, never silently ignored."""
        if prefer_grpc is None:  # not said: gRPC exactly when a gRPC target is given
            prefer_grpc = grpc_url is not None
        elif not prefer_grpc and grpc_url is not None:
            raise ValueError(
                f"grpc_url={grpc_url!r} with prefer_grpc=False: the gRPC target would go unused (leave "
                "prefer_grpc out, or set it True, to use gRPC; drop grpc_url for REST)"
            )
        rest = urlsplit(url)
        if rest.scheme not in ("http", "https") or not rest.hostname:
            raise ValueError(f"url must look like http://host:port, got {url!r}")
        target, tls = None, False
        if grpc_url is not None:
            scheme, sep, rest_of = grpc_url.partition("://")
            if not sep:
                scheme, rest_of = "grpc", grpc_url
            if scheme not in ("grpc", "grpcs", "http", "https") or not rest_of:
                raise ValueError(f"grpc_url must look like host:port or grpcs://host:port, got {grpc_url!r}")
            target, tls = rest_of.rstrip("/"), scheme in ("grpcs", "https")
        elif prefer_grpc:
            target, tls = f"{rest.hostname}:{DEFAULT_GRPC_PORT}", rest.scheme == "https"
        if prefer_grpc:
            if files is not None and not tls:
                raise ValueError(
                    f"ca_cert / client_cert need TLS, but gRPC to {target!r} would be plain: give "
                    "grpc_url='grpcs://host:port' (or an https:// url)"
                )
            return cls(url.rstrip("/"), target, tls, api_key, files)
        if files is not None and rest.scheme != "https":
            raise ValueError(f"ca_cert / client_cert need TLS: use an https:// url, got {url!r}")
        return cls(url.rstrip("/"), None, tls, api_key, files)

    @property
    def headers(self) -> dict[str, str]:
        return {} if self.api_key is None else {"authorization": f"Bearer {self.api_key}"}


def backoff_delay(attempt: int, base: float, cap: float = 2.0) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): exponential, capped, with jitter."""
    return float(min(cap, base * 2.0**attempt) * (0.5 + random.random() / 2))
