"""`vecdb serve`: one process, REST (uvicorn) and gRPC over one Database.

Start-up: open the data directory, start both listeners, load (recover) every collection in the
background, then report ready (/readyz, gRPC health SERVING). SIGTERM/SIGINT: stop accepting, let
in-flight requests finish (``shutdown_grace_seconds``), close the Database (which checkpoints every
index), exit 0.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import resource
import signal
import threading
import time
from types import FrameType

import uvicorn
from grpc_health.v1 import health_pb2

from vecdb.config import Settings
from vecdb.engine import Database, DatabaseAPI
from vecdb.errors import InvalidConfigError, UnavailableError
from vecdb.server.auth import Authenticator
from vecdb.server.grpc_service import SERVICE_NAME, create_grpc_server
from vecdb.server.http_guard import protocol_with_read_timeout
from vecdb.server.metrics import Metrics
from vecdb.server.rest import create_app
from vecdb.server.tls import load_server_tls

__all__ = ["serve"]

log = logging.getLogger("vecdb.server")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the traceback, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft limit on open files to the hard limit (every connection is a file descriptor: at a
    1,024 soft limit, ~1,000 idle sockets stop both listeners from accepting). Returns (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft >= hard:
        return soft, soft
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        log.warning("could not raise the open-files limit from %d to %d: %s", soft, target, exc)
        return soft, soft
    return soft, target


def _load_all(db: DatabaseAPI, on_ready: list[threading.Event]) -> None:
    started = time.perf_counter()
    names = db.list_collections()
    for name in names:
        try:
            db.get_collection(name)
        except Exception:
            log.exception("collection %s could not be opened", name)
    log.info("loaded %d collections in %.2f s", len(names), time.perf_counter() - started)
    for event in on_ready:
        event.set()


def _open_database(settings: Settings) -> DatabaseAPI:
    """The data directory; with ``ray_address``, one whose sharded collections live in Ray actors (Ray
    is imported only then: it is an optional extra)."""
    if settings.ray_address is None:
        return Database(settings.data_dir, settings=settings)
    try:
        from vecdb.cluster import ClusterDatabase
    except ImportError as exc:
        raise InvalidConfigError(
            f"ray_address is set but Ray is not installed ({exc}): pip install 'vecdb[cluster]'"
        ) from exc
    log.info("sharded collections on the Ray cluster at %s", settings.ray_address)
    return ClusterDatabase(
        settings.data_dir,
        settings=settings,
        ray_address=settings.ray_address,
        actor_options={"num_cpus": settings.ray_actor_cpus},
    )


def serve(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT. Returns the exit code."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler], force=True)
    authenticator = Authenticator(settings.api_keys)
    before, after = raise_open_files_limit()
    log.info("open files limit: %d (soft limit was %d)", after, before)
    if not authenticator.enabled and not _is_loopback(settings.host):
        log.warning(
            "no API key configured and listening on %s: anyone who can reach it can read and write",
            settings.host,
        )
    try:  # before anything opens or listens: a TLS mistake is one clear line, not a half-started server
        tls = load_server_tls(settings)
    except InvalidConfigError as exc:
        log.error("TLS: %s", exc.message)
        return 1
    try:
        db = _open_database(settings)
    except (InvalidConfigError, UnavailableError) as exc:
        log.error("%s", exc.message)
        return 1
    try:
        metrics = Metrics(db)
        app = create_app(
            db, authenticator=authenticator, metrics=metrics, max_request_bytes=settings.max_request_bytes
        )
        grpc_server, grpc_port, health_servicer = create_grpc_server(
            db,
            authenticator=authenticator,
            metrics=metrics,
            address=f"{settings.host}:{settings.grpc_port}",
            workers=settings.grpc_workers,
            max_message_bytes=settings.max_request_bytes,
            credentials=None if tls is None else tls.grpc_credentials(),
            max_concurrent_rpcs=settings.grpc_max_concurrent_rpcs,
            max_streams=settings.grpc_max_streams,
            stream_idle_seconds=settings.grpc_stream_idle_seconds,
            connection_idle_seconds=settings.grpc_connection_idle_seconds,
            keepalive_seconds=settings.grpc_keepalive_seconds,
            handshake_seconds=settings.read_timeout_seconds,
        )
        grpc_server.start()
        ready = threading.Event()

        def mark_ready() -> None:
            ready.wait()
            app.state.ready = True
            for name in ("", SERVICE_NAME):
                health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)

        threading.Thread(target=mark_ready, daemon=True).start()
        threading.Thread(target=_load_all, args=(db, [ready]), daemon=True, name="vecdb-load").start()
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.rest_port,
            log_level="warning" if settings.log_level != "debug" else "debug",
            log_config=None,  # uvicorn's loggers (access lines included) go through the JSON handler above
            access_log=settings.log_level == "debug",
            timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) or None,
            lifespan="off",
            http=protocol_with_read_timeout(settings.read_timeout_seconds),
            limit_concurrency=settings.rest_max_connections,
            timeout_keep_alive=settings.rest_keep_alive_seconds,
            **({} if tls is None else tls.uvicorn_options()),
        )
        server = uvicorn.Server(config)
        log.info(
            "vecdb serving REST on %s://%s:%d and gRPC on %s:%d%s, data in %s",
            "http" if tls is None else "https",
            settings.host,
            settings.rest_port,
            settings.host,
            grpc_port,
            "" if tls is None else " (TLS, client certificates required)" if tls.mutual else " (TLS)",
            settings.data_dir,
        )

        def on_signal(signum: int, frame: FrameType | None) -> None:
            log.info("signal %d: draining", signum)
            for name in ("", SERVICE_NAME):
                health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
            server.should_exit = True

        # uvicorn captures SIGTERM/SIGINT while it runs (graceful REST shutdown), then restores these
        # handlers and re-raises the signal to them: gRPC health turns NOT_SERVING and gRPC drains.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)
        try:
            server.run()
        except SystemExit:  # uvicorn exits this way when it cannot bind
            server.started = False
        if not server.started:
            log.error("REST could not start on %s:%d", settings.host, settings.rest_port)
            grpc_server.stop(0)
            return 1
        # grpcio's stop event is set once every call ended; a few seconds past the grace, go on closing
        # the database anyway (in-flight writes were acknowledged or not: either way nothing is lost).
        if not grpc_server.stop(settings.shutdown_grace_seconds).wait(settings.shutdown_grace_seconds + 5):
            log.warning("gRPC did not finish stopping within the grace period; closing anyway")
    finally:
        db.close()
        log.info("stopped; indexes checkpointed")
    return 0
