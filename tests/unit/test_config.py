"""Every setting is documented, and the environment reaches nested sections."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from vecdb.config import Settings

DOC = Path(__file__).parents[2] / "docs" / "configuration.md"


def _paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += _paths(ann, f"{prefix}{name}.")
        else:
            out.append(prefix + name)
    return out


def test_every_setting_is_documented() -> None:
    text = DOC.read_text()
    paths = _paths(Settings)
    assert len(paths) > 10
    for path in paths:
        assert f"`{path}`" in text, f"{path} is not in docs/configuration.md"
        env = "VECDB_" + path.upper().replace(".", "__")
        assert f"`{env}`" in text, f"{env} is not in docs/configuration.md"


def test_environment_reaches_nested_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VECDB_LIMITS__MAX_K", "77")
    monkeypatch.setenv("VECDB_STORAGE__SYNC_WRITES", "false")
    s = Settings()  # type: ignore[call-arg]
    assert s.limits.max_k == 77
    assert s.storage.sync_writes is False


def test_tls_files_go_together(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="tls_key is set but tls_cert is not"):
        Settings(tls_key=Path("server.key"))
    with pytest.raises(ValueError, match="tls_cert is set but tls_key is not"):
        Settings(tls_cert=Path("server.pem"))
    with pytest.raises(ValueError, match=r"tls_client_ca \(mutual TLS\) needs tls_cert and tls_key"):
        Settings(tls_client_ca=Path("ca.pem"))
    monkeypatch.setenv("VECDB_TLS_CERT", "server.pem")
    monkeypatch.setenv("VECDB_TLS_KEY", "server.key")
    s = Settings()  # type: ignore[call-arg]
    assert (s.tls_cert, s.tls_key, s.tls_client_ca) == (Path("server.pem"), Path("server.key"), None)
