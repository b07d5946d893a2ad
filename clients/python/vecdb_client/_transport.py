"""Connection settings shared by both clients: where to connect, headers, retry delays."""

from __future__ import annotations

import random
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["DEFAULT_GRPC_PORT", "Endpoint", "backoff_delay"]

DEFAULT_GRPC_PORT = 50051


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What a client connects to: REST base URL, or gRPC target (``host:port``) with or without TLS."""

    rest_url: str
    grpc_target: str | None
    grpc_tls: bool
    api_key: str | None

    @classmethod
    def resolve(cls, url: str, grpc_url: str | None, prefer_grpc: bool, api_key: str | None) -> Endpoint:
        """``grpc_url`` may be ``host:port``, ``grpc://host:port`` or ``grpcs://host:port`` (TLS). With
        ``prefer_grpc`` and no ``grpc_url``, gRPC goes to ``url``'s host on port 50051."""
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
        return cls(url.rstrip("/"), target if prefer_grpc else None, tls, api_key)

    @property
    def headers(self) -> dict[str, str]:
        return {} if self.api_key is None else {"authorization": f"Bearer {self.api_key}"}


def backoff_delay(attempt: int, base: float, cap: float = 2.0) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): exponential, capped, with jitter."""
    return float(min(cap, base * 2.0**attempt) * (0.5 + random.random() / 2))
