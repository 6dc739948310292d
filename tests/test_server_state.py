"""atomic writes, the registry, the env file, the deploy lock, history."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tova.errors import LockedError, TovaError
from tova.layout import Layout
from tova.server import envfile, history
from tova.server.atomic import flip_symlink, write_atomic
from tova.server.locks import deploy_lock
from tova.server.netstat import listening_ports
from tova.server.registry import Registry, allocate, free_app

ROOT = Path(__file__).resolve().parent.parent


def test_write_atomic_replaces_content_and_mode(tmp_path):
    p = tmp_path / "sub" / "f"
    write_atomic(p, "one")
    write_atomic(p, b"two", mode=0o600)
    assert p.read_bytes() == b"two"
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert [x.name for x in p.parent.iterdir()] == ["f"]  # no temp files left


def test_write_atomic_syncs_state_but_not_what_only_informs(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real(fd))
    write_atomic(tmp_path / "state", "one")
    assert len(synced) == 2  # the file, then its directory
    write_atomic(tmp_path / "log", "two", durable=False)
    assert len(synced) == 2 and (tmp_path / "log").read_text() == "two"


def test_flip_symlink_moves_link(tmp_path):
    (tmp_path / "releases" / "v1").mkdir(parents=True)
    (tmp_path / "releases" / "v2").mkdir()
    link = tmp_path / "current"
    flip_symlink(link, "releases/v1")
    flip_symlink(link, "releases/v2")
    assert os.readlink(link) == "releases/v2"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["current", "releases"]


# --- registry ---------------------------------------------------------------------------

def test_new_apps_take_consecutive_blocks_and_reuse_gaps():
    data = {"apps": {}, "next_port": 3000}
    assert allocate(data, "a", 2, 3000) == [3000, 3001]
    assert allocate(data, "b", 1, 3000) == [3002]
    assert allocate(data, "c", 3, 3000) == [3003, 3004, 3005]
    assert data["next_port"] == 3006
    assert free_app(data, "a", 3000) == [3000, 3001]
    assert allocate(data, "d", 3, 3000) == [3006, 3007, 3008]  # the gap is too small
    assert allocate(data, "e", 2, 3000) == [3000, 3001]  # ...but fits this one


def test_changing_instances_never_moves_other_apps():
    data = {"apps": {}, "next_port": 3000}
    allocate(data, "a", 2, 3000)
    allocate(data, "b", 1, 3000)
    assert allocate(data, "a", 3, 3000) == [3000, 3001, 3003]
    assert data["apps"]["b"]["ports"] == [3002]
    assert allocate(data, "a", 1, 3000) == [3000]
    assert allocate(data, "a", 1, 3000) == [3000]  # stable
    assert data["apps"]["b"]["ports"] == [3002]


def test_new_ports_skip_databases_and_ports_in_use():
    data = {"apps": {}, "next_port": 5430}
    # 5432 (PostgreSQL) and 5433 never go to an app; 5434 is in use by other software.
    assert allocate(data, "a", 2, 5430) == [5430, 5431]
    assert allocate(data, "b", 2, 5430, avoid={5434}) == [5435, 5436]
    assert allocate(data, "c", 1, 6379) == [6381]
    # Anything already on the first port (as 3000 often is) pushes the first app past it.
    assert allocate({"apps": {}, "next_port": 3000}, "d", 1, 3000, avoid={3000}) == [3001]
    # Growing an app skips them too, and an app keeps its own ports however busy they look.
    assert allocate(data, "a", 3, 5430, avoid={5430, 5431, 5434, 5437}) == [5430, 5431, 5438]


def test_listening_ports_from_proc_net_tcp(tmp_path):
    net = tmp_path / "net"
    net.mkdir()
    (net / "tcp").write_text(
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   105        0 1 1\n"
        "   1: 0100007F:0BB8 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 2 1\n")
    (net / "tcp6").write_text(
        "  sl  local_address remote_address st ...\n"
        "   0: 00000000000000000000000000000000:18EB 00000000000000000000000000000000:0000 0A 0 0 0\n")
    # 0x1538 = 5432 listening, 0x0BB8 = 3000 only an established connection, 0x18EB = 6379.
    assert listening_ports(tmp_path) == {5432, 6379}
    assert listening_ports(tmp_path / "missing") == set()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcde"), st.integers(0, 4)), max_size=25))
def test_ports_never_overlap(ops):
    data = {"apps": {}, "next_port": 4000}
    for app, n in ops:
        before = {k: list(v["ports"]) for k, v in data["apps"].items() if k != app}
        if n == 0:
            free_app(data, app, 4000)
        else:
            assert len(allocate(data, app, n, 4000)) == n
        for k, ports in before.items():
            assert data["apps"][k]["ports"] == ports
        allp = [p for v in data["apps"].values() for p in v["ports"]]
        assert len(allp) == len(set(allp))
        assert data["next_port"] == max(allp, default=3999) + 1


def test_registry_transaction_writes_only_on_success(tmp_path):
    reg = Registry(Layout.of(tmp_path), first_port=5000)
    with reg.transaction() as data:
        allocate(data, "a", 1, 5000)
    with pytest.raises(RuntimeError):
        with reg.transaction() as data:
            allocate(data, "b", 1, 5000)
            raise RuntimeError
    assert list(reg.read()["apps"]) == ["a"]
    assert json.loads((tmp_path / "registry.json").read_text())["apps"]["a"]["ports"] == [5000]


# --- env file ---------------------------------------------------------------------------

HOSTILE = ["plain", "with space", "a=b=c", 'say "hi"', "it's", "# not a comment", "$HOME `id`",
           "back\\slash\\", "multi\nline", "  padded  ", "", "ünïcode ✓", "; semi"]


def test_envfile_round_trips_hostile_values(tmp_path):
    p = tmp_path / ".env.production"
    values = {f"K{i}": v for i, v in enumerate(HOSTILE)}
    envfile.set_values(p, values)
    assert envfile.read(p) == values
    assert stat.S_IMODE(p.stat().st_mode) == 0o600


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True),
                       st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)))))
def test_envfile_parse_inverts_serialize(values):
    assert envfile.parse(envfile.serialize(values)) == values


def test_envfile_reads_hand_written_forms():
    text = textwrap.dedent("""\
        # comment
        ; another
        export A=1
        B = two words  {trailing}
        C='single $quoted'
        D="dq \\"x\\" \\$y"
        DATABASE_URL=postgres://u:p@localhost/db?x=1
    """).format(trailing="")  # trailing blanks after B's value are part of the case
    assert envfile.parse(text) == {"A": "1", "B": "two words", "C": "single $quoted",
                                   "D": 'dq "x" $y', "DATABASE_URL": "postgres://u:p@localhost/db?x=1"}


def test_envfile_rejects_bad_names_and_keeps_file(tmp_path):
    p = tmp_path / "e"
    envfile.set_values(p, {"GOOD": "1"})
    with pytest.raises(TovaError):
        envfile.set_values(p, {"BAD-NAME": "x"})
    with pytest.raises(TovaError):
        envfile.set_values(p, {"X": "nul\x00"})
    assert envfile.read(p) == {"GOOD": "1"}
    assert envfile.unset(p, ["GOOD", "NOPE"]) == ["GOOD"]
    assert envfile.read(p) == {}


def test_envfile_ensure_never_overwrites(tmp_path):
    p = tmp_path / "e"
    envfile.set_values(p, {"A": "1"})
    envfile.ensure(p)
    assert envfile.read(p) == {"A": "1"}
    assert envfile.missing(p, ("A", "B")) == ["B"]


# --- deploy lock --------------------------------------------------------------------------

def test_lock_times_out_naming_the_holder(tmp_path):
    app = Layout.of(tmp_path).app("myapp")
    with deploy_lock(app, 1):
        with pytest.raises(LockedError) as exc:
            with deploy_lock(app, 0.2):
                pass
    assert f"pid {os.getpid()}" in exc.value.message
    assert exc.value.exit_code == 4
    with deploy_lock(app, 0.2):  # released on exit
        pass


def test_lock_is_free_after_holder_is_sigkilled(tmp_path):
    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from tova.layout import Layout
        from tova.server.locks import deploy_lock
        with deploy_lock(Layout.of({str(tmp_path)!r}).app("myapp"), 5):
            print("locked", flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        app = Layout.of(tmp_path).app("myapp")
        with pytest.raises(LockedError):
            with deploy_lock(app, 0.1):
                pass
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with deploy_lock(app, 1):
            pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_history_appends_and_skips_torn_lines(tmp_path):
    p = tmp_path / "h.jsonl"
    history.append(p, {"version": "v1", "outcome": "ok"})
    with open(p, "a") as f:
        f.write('{"version": "v2", "outc')  # a crash mid-write
    history.append(p, {"version": "v3", "outcome": "failed"})
    assert [r["version"] for r in history.read(p)] == ["v1", "v3"]
    assert history.last(p)["outcome"] == "failed"
