"""Release directories: releases/vN with N never reused, a failed marker, listing, pruning.

A release appears under its final name only when complete (built under a temp name, then
renamed), so `current` can only ever point at a whole release."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tova.layout import RELEASE_RE, AppLayout
from tova.manifest import MANIFEST_FILE, Manifest
from tova.server.atomic import write_atomic

FAILED_MARKER = ".tova-failed"
TMP_PREFIX = ".incoming-"


@dataclass(frozen=True)
class Release:
    version: str
    number: int
    path: Path
    failed: bool

    def meta(self) -> dict[str, Any]:
        return read_meta(self.path)


def read_meta(release_dir: Path) -> dict[str, Any]:
    """A release's manifest file as written at release time ({} when unreadable): the one
    reader of that file."""
    try:
        meta = json.loads((release_dir / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def read_manifest(release_dir: Path) -> Manifest | None:
    """The manifest a release was deployed with; None when missing or unreadable."""
    meta = read_meta(release_dir)
    try:
        return Manifest.from_dict(meta) if meta else None
    except (KeyError, TypeError, ValueError):
        return None


def current_manifest(app: AppLayout) -> Manifest | None:
    return read_manifest(app.current)


def listing(app: AppLayout) -> list[Release]:
    """All releases, oldest first. Only names matching ^v\\d+$ count."""
    out = []
    if app.releases.is_dir():
        for entry in app.releases.iterdir():
            m = RELEASE_RE.match(entry.name)
            if m and entry.is_dir() and not entry.is_symlink():
                out.append(Release(entry.name, int(m.group(1)), entry,
                                   (entry / FAILED_MARKER).exists()))
    return sorted(out, key=lambda r: r.number)


def get(app: AppLayout, version: str) -> Release | None:
    return next((r for r in listing(app) if r.version == version), None)


def next_version(app: AppLayout) -> str:
    """Reserve the next number. The counter is written before the directory exists, so a
    crash can skip a number but never hand one out twice."""
    try:
        counter = int(app.release_counter.read_text().strip())
    except (OSError, ValueError):
        counter = 0
    highest = max([counter, *(r.number for r in listing(app))])
    n = highest + 1
    write_atomic(app.release_counter, f"{n}\n")
    return f"v{n}"


def staging_dir(app: AppLayout, version: str) -> Path:
    app.releases.mkdir(parents=True, exist_ok=True)
    path = app.releases / f"{TMP_PREFIX}{version}"
    if path.exists():
        shutil.rmtree(path)
    return path


def publish(app: AppLayout, staged: Path, version: str) -> Path:
    final = app.release(version)
    staged.rename(final)
    return final


def mark_failed(release_dir: Path, reason: str) -> None:
    write_atomic(release_dir / FAILED_MARKER, reason + "\n")


def clean_leftovers(app: AppLayout) -> None:
    """Remove half-built releases and build dirs left by a crashed deploy (call under the
    deploy lock)."""
    if app.releases.is_dir():
        for entry in app.releases.iterdir():
            if entry.name.startswith(TMP_PREFIX):
                shutil.rmtree(entry, ignore_errors=True)
    if app.build_dir.is_dir():
        shutil.rmtree(app.build_dir, ignore_errors=True)


def previous_good(app: AppLayout, before: str | None) -> Release | None:
    """The newest non-failed release older than `before` (or the newest one overall)."""
    limit = int(before[1:]) if before and RELEASE_RE.match(before) else None
    good = [r for r in listing(app) if not r.failed and (limit is None or r.number < limit)]
    return good[-1] if good else None


def to_prune(app: AppLayout, keep: int, current: str | None) -> list[Release]:
    """Keep `keep` newest successful releases, at most the newest failed one, and always
    the current release and the successful one before it (the rollback target)."""
    all_releases = listing(app)
    protected = {current} if current else set()
    prev = previous_good(app, current) if current else None
    if prev:
        protected.add(prev.version)
    good = [r for r in all_releases if not r.failed]
    failed = [r for r in all_releases if r.failed]
    keep_set = {r.version for r in good[-keep:]} if keep > 0 else set()
    if failed:
        keep_set.add(failed[-1].version)
    return [r for r in all_releases if r.version not in keep_set | protected]


def prune(app: AppLayout, keep: int, current: str | None) -> list[str]:
    removed = []
    for r in to_prune(app, keep, current):
        shutil.rmtree(r.path)
        removed.append(r.version)
    return removed
