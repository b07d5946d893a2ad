"""TLS end to end: a real ``vecdb serve`` with ``--tls-cert/--tls-key`` (and ``--tls-client-ca`` for mutual
TLS) on free ports, reached through ``vecdb_client`` over REST (HTTPS) and gRPC (TLS).

Certificates are throwaway ones (``tlscerts``): one CA that issued the server's and a client's
certificate, and an unrelated CA with its own client certificate. One server per scenario, per module.
"""

from __future__ import annotations

import re
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from grpc_health.v1 import health_pb2, health_pb2_grpc
from serverproc import ServerProcess, launch, server_env, vecdb_command, wait_exit
from tlscerts import Pki, make_pki

from vecdb.cli import main as vecdb_main
from vecdb.config import Settings
from vecdb.errors import InvalidConfigError
from vecdb.server.tls import load_server_tls
from vecdb_client import AsyncClient, Client
from vecdb_client.errors import UnavailableError

DIM = 8
TRANSPORTS = ("rest", "grpc")


# ---- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """The CA the servers' certificates come from, with a client certificate it issued."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """An unrelated CA (and a client certificate from it): trusted by nobody here."""
    return make_pki(tmp_path_factory.mktemp("other-pki"), "stranger")


def _client_context(pki: Pki, with_cert: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    if with_cert:
        ctx.load_cert_chain(pki.client_cert, pki.client_key)
    return ctx


def _serve(base: Path, pki: Pki, mutual: bool) -> Iterator[ServerProcess]:
    args = ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]
    if mutual:
        args += ["--tls-client-ca", str(pki.ca)]
    sp = launch(base / "data", base / "logs", *args, ssl_context=_client_context(pki, mutual))
    try:
        sp.wait_ready()
        yield sp
    finally:
        rc = sp.stop()
    assert rc == 0, f"server exited {rc} after SIGTERM:\n{sp.log()}"


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[ServerProcess]:
    """A server with TLS on both ports, no client certificates asked."""
    yield from _serve(tmp_path_factory.mktemp("tls"), pki, mutual=False)


@pytest.fixture(scope="module")
def mtls_server(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[ServerProcess]:
    """A server with mutual TLS: both ports require a client certificate issued by ``pki``'s CA."""
    yield from _serve(tmp_path_factory.mktemp("mtls"), pki, mutual=True)


def _client(sp: ServerProcess, transport: str, **kwargs: Any) -> Client:
    kwargs.setdefault("retries", 0)
    kwargs.setdefault("timeout", 10.0)
    url = f"https://127.0.0.1:{sp.rest_port}"
    if transport == "grpc":
        return Client(url, grpc_url=f"grpcs://127.0.0.1:{sp.grpc_port}", prefer_grpc=True, **kwargs)
    return Client(url, **kwargs)


def _roundtrip(client: Client, name: str) -> None:
    vecs = np.random.default_rng(1).standard_normal((3, DIM)).astype(np.float32)
    col = client.create_collection(name, dim=DIM, metric="l2")
    assert col.upsert(["a", "b", "c"], vecs, texts=["x", "y", "z"]) == 3
    hits = col.search(vecs[1], k=2)[0]
    assert hits[0].id == "b"
    assert name in client.list_collections()


def _grpc_health(sp: ServerProcess, creds: grpc.ChannelCredentials | None) -> Any:
    target = f"127.0.0.1:{sp.grpc_port}"
    with grpc.secure_channel(target, creds) if creds else grpc.insecure_channel(target) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)


def _refused(client: Client) -> UnavailableError:
    with client, pytest.raises(UnavailableError) as info:
        client.list_collections()
    return info.value


# ---- TLS ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_client_over_tls(tls_server: ServerProcess, pki: Pki, transport: str) -> None:
    with _client(tls_server, transport, ca_cert=pki.ca) as client:
        assert client.endpoint.grpc_tls == (transport == "grpc")
        _roundtrip(client, f"tls_{transport}")


def test_ca_as_pem_bytes_and_text(tls_server: ServerProcess, pki: Pki) -> None:
    pem = pki.ca.read_bytes()
    for ca in (pem, pem.decode()):
        for transport in TRANSPORTS:
            with _client(tls_server, transport, ca_cert=ca) as client:
                assert isinstance(client.list_collections(), list)


def test_health_over_tls(tls_server: ServerProcess, pki: Pki) -> None:
    with tls_server.http() as http:
        assert http.get("/healthz").status_code == 200
        assert http.get("/readyz").json() == {"status": "ready"}
    reply = _grpc_health(tls_server, grpc.ssl_channel_credentials(pki.ca.read_bytes()))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_plain_connections_to_tls_ports_fail(tls_server: ServerProcess) -> None:
    with pytest.raises(httpx.TransportError), httpx.Client(timeout=5) as http:
        http.get(f"http://127.0.0.1:{tls_server.rest_port}/healthz")
    _refused(Client(f"http://127.0.0.1:{tls_server.rest_port}", retries=0, timeout=5))
    plain_grpc = Client(grpc_url=f"127.0.0.1:{tls_server.grpc_port}", prefer_grpc=True, retries=0, timeout=5)
    _refused(plain_grpc)
    with pytest.raises(grpc.RpcError) as info:
        _grpc_health(tls_server, None)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_client_that_does_not_trust_the_ca_is_refused(
    tls_server: ServerProcess, other_pki: Pki, transport: str
) -> None:
    # The system's roots (no ca_cert), then a CA that did not issue the server's certificate.
    default_roots = _client(tls_server, transport)
    assert "CERTIFICATE_VERIFY_FAILED" in str(_refused(default_roots))
    wrong_ca = _client(tls_server, transport, ca_cert=other_pki.ca)
    assert "CERTIFICATE_VERIFY_FAILED" in str(_refused(wrong_ca))


async def test_async_client_and_like_carry_tls(tls_server: ServerProcess, pki: Pki) -> None:
    for transport in TRANSPORTS:
        with _client(tls_server, transport, ca_cert=pki.ca) as client:
            async with AsyncClient.like(client) as aclient:
                assert aclient.endpoint == client.endpoint
                assert isinstance(await aclient.list_collections(), list)
    url = f"https://127.0.0.1:{tls_server.rest_port}"
    async with AsyncClient(url, ca_cert=pki.ca, retries=0) as aclient:
        col = await aclient.create_collection("tls_async", dim=DIM)
        assert await col.upsert(["a"], np.ones((1, DIM), dtype=np.float32)) == 1


def test_cli_commands_take_ca_cert(
    tls_server: ServerProcess, pki: Pki, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("VECDB_URL", "VECDB_API_KEY", "VECDB_CA_CERT", "VECDB_CLIENT_CERT", "VECDB_CLIENT_KEY"):
        monkeypatch.delenv(var, raising=False)
    url = f"https://127.0.0.1:{tls_server.rest_port}"
    where = ["--url", url, "--ca-cert", str(pki.ca)]
    assert vecdb_main(["collections", "create", "tls_cli", "--dim", "4", "--no-model", *where]) == 0
    assert vecdb_main(["collections", "list", *where]) == 0
    assert "tls_cli" in capsys.readouterr().out
    monkeypatch.setenv("VECDB_CA_CERT", str(pki.ca))
    assert vecdb_main(["collections", "list", "--url", url]) == 0
    monkeypatch.delenv("VECDB_CA_CERT")
    assert vecdb_main(["collections", "list", "--url", url]) == 1
    assert "CERTIFICATE_VERIFY_FAILED" in capsys.readouterr().err
    plain = f"http://127.0.0.1:{tls_server.rest_port}"
    assert vecdb_main(["collections", "list", "--url", plain, "--ca-cert", str(pki.ca)]) == 1
    assert "need TLS" in capsys.readouterr().err


# ---- mutual TLS -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_mutual_tls_with_client_certificate(mtls_server: ServerProcess, pki: Pki, transport: str) -> None:
    with _client(
        mtls_server, transport, ca_cert=pki.ca, client_cert=pki.client_cert, client_key=pki.client_key
    ) as client:
        _roundtrip(client, f"mtls_{transport}")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_mutual_tls_refuses_clients_without_a_good_certificate(
    mtls_server: ServerProcess, pki: Pki, other_pki: Pki, transport: str
) -> None:
    _refused(_client(mtls_server, transport, ca_cert=pki.ca))
    stranger = {"client_cert": other_pki.client_cert, "client_key": other_pki.client_key}
    _refused(_client(mtls_server, transport, ca_cert=pki.ca, **stranger))


def test_mutual_tls_health(mtls_server: ServerProcess, pki: Pki) -> None:
    with mtls_server.http() as http:  # the fixture's context presents the client certificate
        assert http.get("/readyz").status_code == 200
    with pytest.raises(httpx.TransportError), httpx.Client(verify=_client_context(pki, False)) as http:
        http.get(f"{mtls_server.rest_url}/healthz")
    ca, key, cert = (p.read_bytes() for p in (pki.ca, pki.client_key, pki.client_cert))
    reply = _grpc_health(mtls_server, grpc.ssl_channel_credentials(ca, key, cert))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError):
        _grpc_health(mtls_server, grpc.ssl_channel_credentials(ca))


# ---- configuration errors -------------------------------------------------------------------------------


def _serve_fails(tmp_path: Path, *args: str) -> tuple[int, str]:
    data = tmp_path / "data"
    proc = subprocess.Popen(
        vecdb_command("serve", "--data-dir", str(data), "--rest-port", "0", "--grpc-port", "0", *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=server_env(),
        cwd=str(tmp_path),
    )
    rc = wait_exit(proc, 60)
    assert proc.stdout is not None
    out = proc.stdout.read().decode(errors="replace")
    proc.stdout.close()
    assert not data.exists(), "the data directory was opened despite the bad TLS settings"
    assert "Traceback" not in out, out
    return rc, out


def test_serve_refuses_a_certificate_without_its_key(tmp_path: Path, pki: Pki) -> None:
    rc, out = _serve_fails(tmp_path, "--tls-cert", str(pki.server_cert))
    assert rc == 2, out
    assert "tls_cert is set but tls_key is not" in out


def test_serve_names_a_missing_file(tmp_path: Path, pki: Pki) -> None:
    missing = tmp_path / "nope.pem"
    rc, out = _serve_fails(tmp_path, "--tls-cert", str(missing), "--tls-key", str(pki.server_key))
    assert rc == 1, out
    assert f"tls_cert: cannot read {missing}" in out


def test_serve_refuses_a_key_of_another_certificate(tmp_path: Path, pki: Pki, other_pki: Pki) -> None:
    wrong_key = ["--tls-cert", str(pki.server_cert), "--tls-key", str(other_pki.server_key)]
    rc, out = _serve_fails(tmp_path, *wrong_key)
    assert rc == 1, out
    assert "are not a certificate and its private key" in out


def test_load_server_tls(pki: Pki) -> None:
    assert load_server_tls(Settings()) is None
    tls = load_server_tls(Settings(tls_cert=pki.server_cert, tls_key=pki.server_key, tls_client_ca=pki.ca))
    assert tls is not None and tls.mutual
    assert tls.uvicorn_options()["ssl_cert_reqs"] == ssl.CERT_REQUIRED


def test_load_server_tls_errors(tmp_path: Path, pki: Pki) -> None:
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello")
    encrypted = tmp_path / "encrypted.key"
    key = serialization.load_pem_private_key(pki.server_key.read_bytes(), None)
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    cases = [
        ({"tls_key": not_pem}, re.escape(f"tls_key: {not_pem} is not a PEM file")),
        ({"tls_key": encrypted}, re.escape(f"tls_key: {encrypted} is encrypted")),
        ({"tls_client_ca": pki.server_key}, "tls_client_ca: .* holds no usable CA certificate"),
    ]
    for change, message in cases:
        settings = Settings(
            **{"tls_cert": pki.server_cert, "tls_key": pki.server_key, **change}  # type: ignore[arg-type]
        )
        with pytest.raises(InvalidConfigError, match=message):
            load_server_tls(settings)


def test_client_tls_arguments_are_checked(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="need TLS"):
        Client("http://127.0.0.1:1", ca_cert=pki.ca)
    with pytest.raises(ValueError, match="need TLS"):
        Client(grpc_url="127.0.0.1:1", prefer_grpc=True, ca_cert=pki.ca)
    with pytest.raises(ValueError, match="need TLS"):
        AsyncClient("http://127.0.0.1:1", ca_cert=pki.ca)
    missing = tmp_path / "missing.pem"
    with pytest.raises(ValueError, match=re.escape(f"ca_cert: cannot read {missing}")):
        Client("https://127.0.0.1:1", ca_cert=missing)
    with pytest.raises(ValueError, match="client_cert and client_key go together"):
        Client("https://127.0.0.1:1", client_cert=pki.client_cert)
    with pytest.raises(ValueError, match="are not a certificate and its key"):
        Client("https://127.0.0.1:1", client_cert=pki.client_cert, client_key=pki.server_key)
    bad_pem = b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"
    with pytest.raises(ValueError, match="ca_cert holds no usable CA certificate"):
        Client("https://127.0.0.1:1", ca_cert=bad_pem)
    # An https:// url makes gRPC (to its host, port 50051) TLS too, so the CA applies.
    with Client("https://127.0.0.1:1", prefer_grpc=True, ca_cert=pki.ca) as client:
        assert client.endpoint.grpc_tls and client.endpoint.grpc_target == "127.0.0.1:50051"
