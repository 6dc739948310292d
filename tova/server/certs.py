"""Find the certificate Caddy keeps for a domain and read its expiry (pure helpers)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path


def storage_name(domain: str) -> str:
    """Caddy stores `*.example.com` as `wildcard_.example.com`."""
    return domain.replace("*", "wildcard_")


def find_certificate(storage_dirs: tuple[Path, ...] | list[Path], domain: str) -> Path | None:
    """The newest `<issuer>/<domain>/<domain>.crt` below any of Caddy's storage dirs."""
    name = storage_name(domain)
    found: list[Path] = []
    for base in storage_dirs:
        if base.is_dir():
            found.extend(p for p in base.glob(f"*/{name}/{name}.crt") if p.is_file())
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def parse_openssl_enddate(text: str) -> datetime | None:
    """`notAfter=May 29 12:00:00 2026 GMT` (openssl x509 -enddate) → aware datetime."""
    for line in text.splitlines():
        if line.startswith("notAfter="):
            try:
                value = datetime.strptime(line.split("=", 1)[1].strip(), "%b %d %H:%M:%S %Y %Z")
            except ValueError:
                return None
            return value.replace(tzinfo=UTC)
    return None
