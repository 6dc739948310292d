"""The ssh layer and its error mapping, against a real sshd on a loopback port."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import sshd_harness

from tova.client import failures
from tova.client.remote import Probe, RemoteEnv, release_error
from tova.client.ssh import Connection, Result, Target
from tova.errors import RemoteError, TovaError

pytestmark = pytest.mark.skipif(not sshd_harness.available(), reason="needs openssh-server and ssh")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    server = sshd_harness.make_server(tmp_path_factory.mktemp("sshd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def config(sshd, monkeypatch):
    monkeypatch.setenv("TOVA_SSH_CONFIG", str(sshd.ssh_config))
    return sshd.ssh_config


# ---------------------------------------------------------------- pure parts
@pytest.mark.parametrize(
    "text,host,user,port",
    [
        ("root@159.65.100.42", "159.65.100.42", "root", None),
        ("deploy@example.com:2222", "example.com", "deploy", 2222),
        ("tova-test", "tova-test", None, None),
        ("root@[::1]:22", "::1", "root", 22),
    ],
)
def test_target_parse(text, host, user, port):
    t = Target.parse(text)
    assert (t.host, t.user, t.port) == (host, user, port)


@pytest.mark.parametrize("bad", ["", "-oProxyCommand=x", "root@host:99999", "a b", "root@host;rm", "root@-x"])
def test_target_rejects(bad):
    with pytest.raises(TovaError):
        Target.parse(bad)


def test_git_url_forms():
    assert Target.parse("root@h").git_url("/opt/tova/apps/a/repo.git") == "root@h:/opt/tova/apps/a/repo.git"
    assert Target.parse("root@h:2222").git_url("/r.git") == "ssh://root@h:2222/r.git"
    assert Target.parse("alias").git_url("/r.git") == "alias:/r.git"


def test_port_goes_to_dash_p_and_command_is_one_quoted_word():
    c = Connection(Target.parse("root@h:2200"), config="/x/cfg")
    argv = c.ssh_argv(["echo", "a b", "$(id)"])
    assert argv[:2] == ["-F", "/x/cfg"]
    assert argv[argv.index("-p") + 1] == "2200"
    assert argv[-3:] == ["root@h", "--", "echo 'a b' '$(id)'"]
    assert "BatchMode=yes" in argv


def test_remote_env_prefix_only_non_defaults():
    assert RemoteEnv.from_environ({}).prefix() == []
    renv = RemoteEnv.from_environ({"TOVA_REMOTE_ROOT": "/tmp/r x", "TOVA_REMOTE_SYSTEM": "local"})
    assert renv.prefix() == ["env", "TOVA_ROOT=/tmp/r x", "TOVA_SYSTEM=local"]
    assert renv.tova_release == "/tmp/r x/toolkit/bin/tova-release"


@pytest.mark.parametrize(
    "stderr,needle",
    [
        ("ssh: Could not resolve hostname nope: Name or service not known", "cannot resolve"),
        ("ssh: connect to host 1.2.3.4 port 22: Connection refused", "cannot reach"),
        ("ssh: connect to host 1.2.3.4 port 22: Connection timed out", "cannot reach"),
        ("@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\nHost key verification failed.", "CHANGED"),
        (
            "No ED25519 host key is known for x and you have requested strict checking.\nHost key verification failed.",
            "not known",
        ),
        ("root@x: Permission denied (publickey).", "refused authentication"),
        ("something odd happened", "something odd happened"),
    ],
)
def test_error_mapping(stderr, needle):
    err = failures.from_ssh_failure("root@x", 255, stderr)
    assert isinstance(err, RemoteError) and err.exit_code == 5
    assert needle in err.message and err.hint
    assert "\n" not in err.message


def test_release_error_keeps_code_and_hint():
    err = release_error(Result(4, b"", b"error: myapp is being deployed by pid 12\nhint: wait for it\n"))
    assert (err.message, err.hint, err.exit_code) == ("myapp is being deployed by pid 12", "wait for it", 4)


def test_probe_parse():
    p = Probe.parse("uid=1000\nuser=bob\nsudo=0\npython3=1\nvenv=1\npyver=3.11\nmachine=x86_64\nlibc=2.36\n")
    assert (p.uid, p.user, p.sudo, p.venv, p.toolkit, p.pyver) == (1000, "bob", False, True, False, "3.11")


# ---------------------------------------------------------------- real sshd
HOSTILE = [
    "a b",
    "x=y=z",
    'it\'s "quoted"',
    "# not a comment",
    "$(touch /tmp/tova-pwned)",
    "`id`",
    "semi;colon",
    "new\nline",
    "ünï",
    "",
]


def test_hostile_arguments_arrive_byte_exact(config, sshd):
    with Connection(Target.parse("tova-test")) as c:
        for value in HOSTILE:
            res = c.run(["printf", "%s", value])
            assert res.exit_code == 0 and res.out == value
    assert not Path("/tmp/tova-pwned").exists()


def test_stdin_and_exit_status(config, sshd):
    with Connection(Target.parse(sshd.target)) as c:
        res = c.run(["sh", "-c", 'cat; exit 7'], stdin=b"secret\x00bytes")
        assert (res.exit_code, res.stdout) == (7, b"secret\x00bytes")


def test_one_master_per_command_and_cleanup(config, sshd):
    c = Connection(Target.parse("tova-test"))
    c.open()
    sock_dir = c._dir
    assert sock_dir is not None and (sock_dir / "mux").exists()
    assert oct(sock_dir.stat().st_mode & 0o777) == "0o700"
    check = subprocess.run(
        ["ssh", "-F", str(config), "-o", f"ControlPath={sock_dir / 'mux'}", "-O", "check", "tova-test"],
        capture_output=True,
    )
    assert check.returncode == 0
    for _ in range(3):
        assert c.run(["true"]).exit_code == 0
    c.close()
    assert not sock_dir.exists()


def test_unreachable_port(sshd, tmp_path, monkeypatch):
    cfg = sshd.write_ssh_config(tmp_path / "cfg", port=sshd_harness.free_port())
    monkeypatch.setenv("TOVA_SSH_CONFIG", str(cfg))
    with pytest.raises(RemoteError) as e:
        Connection(Target.parse("tova-test")).open()
    assert "cannot reach" in e.value.message


def test_unknown_host_key(sshd, tmp_path, monkeypatch):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    monkeypatch.setenv("TOVA_SSH_CONFIG", str(sshd.write_ssh_config(tmp_path / "cfg", known_hosts=empty)))
    with pytest.raises(RemoteError) as e:
        Connection(Target.parse("tova-test")).open()
    assert "not known" in e.value.message and "ssh tova-test" in e.value.hint


def test_changed_host_key(sshd, tmp_path, monkeypatch):
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    pub = (tmp_path / "other.pub").read_text().split()
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[127.0.0.1]:{sshd.port} {pub[0]} {pub[1]}\n")
    monkeypatch.setenv("TOVA_SSH_CONFIG", str(sshd.write_ssh_config(tmp_path / "cfg", known_hosts=kh)))
    with pytest.raises(RemoteError) as e:
        Connection(Target.parse("tova-test")).open()
    assert "CHANGED" in e.value.message


def test_wrong_key(sshd, tmp_path, monkeypatch):
    other = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    monkeypatch.setenv("TOVA_SSH_CONFIG", str(sshd.write_ssh_config(tmp_path / "cfg", identity=other)))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    with pytest.raises(RemoteError) as e:
        Connection(Target.parse("tova-test")).open()
    assert "refused authentication" in e.value.message


def test_toolkit_missing_maps_to_setup_hint(config, sshd, tmp_path, monkeypatch):
    from tova.client.remote import Server

    monkeypatch.setenv("TOVA_REMOTE_ROOT", str(tmp_path / "empty root"))
    with Server(Target.parse("tova-test"), "prod") as server:
        with pytest.raises(RemoteError) as e:
            server.release(["version"])
    assert "not installed" in e.value.message and "tova deploy prod --setup-git" in e.value.hint


FAKE_SSH = """#!/bin/sh
# ssh as run_attached's Connection drives it: the master (-N -f) and -O exit return at
# once, and are logged; a remote command writes a line every 50 ms until it is killed.
echo "$*" >> "$SSH_LOG"
case " $* " in *" -O exit "*|*" -N -f "*) exit 0 ;; esac
echo $$ > "$SSH_PID"
while :; do echo tick; sleep 0.05; done
"""

DRIVER = """from tova.client.ssh import Connection, Target
with Connection(Target("example.com"), config=None) as conn:
    conn.run_attached(["tova-release", "logs", "myapp", "--follow"])
"""


def test_a_terminated_client_leaves_no_ssh_writing_to_the_terminal(tmp_path):
    """`tova deploy ENV --logs` killed by SIGTERM (or a hang-up) alone, not its process
    group: its attached ssh must go with it and the master be told to exit, or they keep
    writing into the terminal after the shell is back at its prompt."""
    import os
    import signal
    import sys
    import time

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text(FAKE_SSH)
    (bin_dir / "ssh").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SSH_LOG": str(tmp_path / "log"),
           "SSH_PID": str(tmp_path / "pid")}
    out = tmp_path / "terminal"
    for signum in (signal.SIGTERM, signal.SIGHUP):
        (tmp_path / "pid").unlink(missing_ok=True)
        with out.open("w") as terminal:
            client = subprocess.Popen([sys.executable, "-c", DRIVER], env=env, stdout=terminal, stderr=terminal)
            for _ in range(200):
                if out.read_text().count("tick") >= 2:
                    break
                time.sleep(0.05)
            ssh_pid = int((tmp_path / "pid").read_text())
            try:
                client.send_signal(signum)
                code = client.wait(timeout=10)
                gone = out.stat().st_size
                time.sleep(0.3)
                assert out.stat().st_size == gone, "the ssh session outlived the client"
                assert " -O exit " in (tmp_path / "log").read_text().splitlines()[-1] + " "
                assert code == 128 + signum
            finally:
                try:
                    os.kill(ssh_pid, signal.SIGKILL)  # (only when an assertion above failed)
                except ProcessLookupError:
                    pass
