"""vagrant/testserver: pure parts as unit tests, the real server as e2e tests.

The e2e tests check the promise that matters on a shared machine: the host's firewall,
routes and addresses change only by the recorded veth + NAT rule while the server is up
(even with UFW enabled inside it) and are exactly as before once it is down.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import testserver as ts  # noqa: E402


def _load_cli():
    loader = importlib.machinery.SourceFileLoader("testserver_cli", str(ts.SCRIPT))
    spec = importlib.util.spec_from_loader("testserver_cli", loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules["testserver_cli"] = module  # dataclasses look their module up here
    loader.exec_module(module)
    return module


cli = _load_cli()


# ------------------------------------------------------------------ unit tests

def test_default_instance_keeps_the_historic_names():
    default = cli.instance_names("")
    assert (default.name, default.netns, default.host_if, default.default_subnet) == \
        ("default", "tova-ts", "tova-ts0", "10.213.7.0/30")
    assert cli.instance_names("default") == default


def test_named_instances_get_their_own_short_names_and_subnets():
    alpha, beta = cli.instance_names("alpha"), cli.instance_names("beta")
    for inst in (alpha, beta):
        assert len(inst.host_if) <= 15  # the kernel's limit for an interface name
        assert inst.netns == f"tova-ts-{inst.name}"
        assert inst.nspawn_machine == f"tova-testserver-{inst.name}"
        net = cli.addresses(inst.default_subnet)
        assert net[0].startswith("10.213.") and net[2] == 30
    assert len({i.host_if for i in (alpha, beta, cli.instance_names(""))}) == 3
    assert alpha.default_subnet != beta.default_subnet


@pytest.mark.parametrize("name", ["Alpha", "a b", "a;reboot", "-x", "x" * 32, "../etc"])
def test_bad_instance_names_are_refused(name):
    with pytest.raises(cli.Failure, match="bad test server name"):
        cli.instance_names(name)


def test_addresses_of_a_30():
    assert cli.addresses("10.213.7.0/30") == ("10.213.7.1", "10.213.7.2", 30)
    assert cli.addresses("10.213.9.0/24") == ("10.213.9.1", "10.213.9.2", 24)


@pytest.mark.parametrize("subnet", ["10.213.7.0/31", "10.213.7.1/30", "nonsense", "10.213.7.0/33",
                                    "10.213.7.0/30; reboot"])
def test_bad_subnets_are_refused(subnet):
    with pytest.raises(cli.Failure):
        cli.addresses(subnet)


def _addr(ifname, local, prefix):
    return {"ifname": ifname, "addr_info": [{"family": "inet", "local": local, "prefixlen": prefix}]}


@pytest.mark.parametrize(
    "addrs, routes, clash",
    [
        ([_addr("eth0", "192.0.2.2", 24)],
         [{"dst": "default", "dev": "eth0"}, {"dst": "192.0.2.0/24", "dev": "eth0"}], None),
        ([_addr("eth1", "10.213.7.5", 24)], [], "address 10.213.7.5/24 on eth1"),
        ([_addr("eth1", "10.0.0.1", 8)], [], "address 10.0.0.1/8 on eth1"),
        ([], [{"dst": "10.213.0.0/16", "dev": "wg0"}], "route 10.213.0.0/16 via wg0"),
        ([], [{"dst": "10.213.7.2", "dev": "tun0"}], "route 10.213.7.2 via tun0"),
        ([_addr("eth1", "10.213.7.4", 30)], [{"dst": "10.213.7.4/30", "dev": "eth1"}], None),
        # A leftover of our own interface is not a clash (down cleans it up).
        ([_addr(cli.HOST_IF, "10.213.7.1", 30)],
         [{"dst": "10.213.7.0/30", "dev": cli.HOST_IF}], None),
    ],
)
def test_subnet_clashes(addrs, routes, clash):
    found = cli.subnet_clashes("10.213.7.0/30", addrs, routes)
    assert found == ([clash] if clash else [])


def test_ssh_config_has_everything_a_strict_client_needs():
    text = cli.render_ssh_config("10.213.7.2", Path("/c/id_ed25519"), Path("/c/known_hosts"))
    lines = [line.strip() for line in text.splitlines()]
    assert f"Host {cli.MACHINE}" in lines
    for wanted in ("HostName 10.213.7.2", "User root", "IdentityFile /c/id_ed25519",
                   "IdentitiesOnly yes", "UserKnownHostsFile /c/known_hosts",
                   "StrictHostKeyChecking yes", "ControlMaster no", "ControlPath none"):
        assert wanted in lines


def test_ssh_config_quotes_paths_with_spaces_and_refuses_quotes():
    text = cli.render_ssh_config("10.213.7.2", Path("/my cache/k"), Path("/my cache/kh"))
    assert 'IdentityFile "/my cache/k"' in text
    with pytest.raises(cli.Failure):
        cli.render_ssh_config("10.213.7.2", Path('/a"b/k'), Path("/kh"))


def test_ssh_config_is_accepted_by_ssh(tmp_path):
    cfg = tmp_path / "ssh_config"
    cfg.write_text(cli.render_ssh_config("10.213.7.2", tmp_path / "k y", tmp_path / "kh"))
    out = subprocess.run(["ssh", "-G", "-F", str(cfg), cli.MACHINE],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert "hostname 10.213.7.2" in out and "user root" in out
    assert f"identityfile {tmp_path / 'k y'}" in out
    assert "stricthostkeychecking true" in out


def test_nat_rule_excludes_the_servers_own_link():
    rule = cli.nat_rule("10.213.7.0/30")
    assert rule[:3] == ["POSTROUTING", "-s", "10.213.7.0/30"]
    assert rule[3:5] == ["!", "-o"] and rule[5] == cli.HOST_IF
    assert rule[-2:] == ["-j", "MASQUERADE"]


@pytest.mark.parametrize("listing, accepts", [
    ("-P FORWARD ACCEPT\n", True),
    ("-P FORWARD DROP\n-A FORWARD -j DOCKER-USER\n", False),
    ("", False),
])
def test_forward_policy(listing, accepts):
    assert cli.forward_policy_accepts(listing) is accepts


def test_pid_guard_rejects_other_processes():
    assert not cli.pid_is_our_nspawn(None)
    assert not cli.pid_is_our_nspawn(os.getpid())


def test_status_of_an_empty_cache_is_not_running(tmp_path):
    env = {**os.environ, "TOVA_TESTSERVER_CACHE": str(tmp_path)}
    proc = subprocess.run([str(ts.SCRIPT), "status", "--json"], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 3
    assert json.loads(proc.stdout)["running"] is False


# ------------------------------------------------------------------ e2e

def _norm_iptables(text: str) -> list[str]:
    # Counters move with traffic and comments carry a timestamp: neither is a change.
    return [re.sub(r"\[\d+:\d+\]", "[0:0]", line)
            for line in text.splitlines() if line and not line.startswith("#")]


def _out(*args: str) -> str:
    return subprocess.run(list(args), capture_output=True, text=True, check=True).stdout


def host_snapshot() -> dict:
    addrs = sorted((link["ifname"], f"{a['local']}/{a['prefixlen']}")
                   for link in json.loads(_out("ip", "-j", "-4", "addr", "show"))
                   for a in link.get("addr_info", []))
    return {
        "all": _norm_iptables(_out("iptables-save")),
        "filter": _norm_iptables(_out("iptables-save", "-t", "filter")),
        "nat": _norm_iptables(_out("iptables-save", "-t", "nat")),
        "route": sorted(_out("ip", "-4", "route", "show", "table", "all").splitlines()),
        "addr": [list(a) for a in addrs],
        "ip_forward": Path("/proc/sys/net/ipv4/ip_forward").read_text().strip(),
        # UFW sets these inside; the host's must not move (forwarding follows ip_forward).
        "sysctl": {str(f): f.read_text().strip()
                   for f in [*Path("/proc/sys/net/ipv4/conf/all").iterdir(),
                             *Path("/proc/sys/net/ipv4").glob("icmp_*")]
                   if f.name != "forwarding" and os.access(f, os.R_OK)},
    }


def _state() -> dict:
    return json.loads((cli.default_paths().state).read_text())


def assert_host_differs_only_by_server(before: dict, now: dict) -> None:
    state = _state()
    subnet, host_addr = state["subnet"], state["host_address"]
    prefix = subnet.split("/")[1]
    rule = "-A " + " ".join(state["nat_rule"])
    assert rule in now["nat"] and [ln for ln in now["nat"] if ln != rule] == before["nat"]
    extra = ["-A " + " ".join(r) for r in state.get("forward_rules", [])]
    assert all(ln in now["filter"] for ln in extra)
    assert [ln for ln in now["filter"] if ln not in extra] == before["filter"]
    assert sorted(now["addr"]) == sorted(before["addr"] + [[cli.HOST_IF, f"{host_addr}/{prefix}"]])
    added_routes = [r for r in now["route"] if r not in before["route"]]
    assert before["route"] == [r for r in now["route"] if r in before["route"]]
    assert added_routes and all(cli.HOST_IF in r for r in added_routes)
    assert now["ip_forward"] == "1"
    # Turning ip_forward on makes the kernel clear all.accept_redirects; down restores it.
    redirects = "/proc/sys/net/ipv4/conf/all/accept_redirects"
    assert {k: v for k, v in now["sysctl"].items() if k != redirects} == \
        {k: v for k, v in before["sysctl"].items() if k != redirects}


_why_not = ts.unavailable_reason()


def e2e(test):
    """Marked e2e; skipped, saying why, where the server cannot run (CI installs the tools)."""
    return pytest.mark.e2e(pytest.mark.skipif(_why_not is not None, reason=str(_why_not))(test))


@pytest.fixture(scope="module")
def host_before():
    """The host with the server down; the server is left down (and its copy wiped) after."""
    ts.down()
    yield host_snapshot()
    ts.run_script("down", "--wipe")


@e2e
def test_up_changes_host_only_by_veth_and_nat(host_before):
    proc = ts.run_script("reset")
    assert proc.returncode == 0, proc.stderr
    config = Path(proc.stdout.strip().splitlines()[-1])
    assert config == cli.default_paths().ssh_config and config.exists()
    assert_host_differs_only_by_server(host_before, host_snapshot())


@e2e
def test_ssh_exit_codes_and_second_up_reuses_the_server(host_before):
    config = ts.ensure_up()
    pid = _state()["pid"]
    done = ts.ssh("hostname; systemctl is-system-running --wait")
    assert done.returncode == 0 and done.stdout.split() == ["tova-testserver", "running"]
    assert ts.ssh("exit 7").returncode == 7
    assert ts.run_script("ssh", "exit", "5").returncode == 5
    assert ts.ensure_up() == config and _state()["pid"] == pid
    status = json.loads(ts.run_script("status", "--json").stdout)
    assert status["running"] and status["pid"] == pid and status["ssh_config"] == str(config)


@e2e
def test_https_to_the_package_index_works_inside(host_before):
    done = ts.ssh("python3 -m venv /tmp/v && /tmp/v/bin/pip download -q --no-deps "
                  "-d /tmp/dl six && ls /tmp/dl")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("six-")


@e2e
def test_firewall_inside_stays_inside_and_git_over_ssh_works(host_before, tmp_path):
    config = ts.ensure_up()
    up_snapshot = host_snapshot()
    done = ts.ssh("export DEBIAN_FRONTEND=noninteractive; apt-get update -q "
                  "&& apt-get install -y -q ufw git && ufw allow 22/tcp && ufw --force enable "
                  "&& git init -q --bare /srv/app.git")
    assert done.returncode == 0, done.stdout + done.stderr
    inside = ts.ssh("iptables -S")
    assert inside.returncode == 0 and "ufw-user-input" in inside.stdout  # UFW really acted
    assert host_snapshot() == up_snapshot  # ...but not on the host
    assert ts.ssh("ufw status").stdout.startswith("Status: active")

    work = tmp_path / "w"
    git = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "first"], check=True)
    push = subprocess.run([*git, "push", "-q", f"{ts.HOST}:/srv/app.git", "HEAD:refs/heads/main"],
                          env=ts.ssh_env(config), capture_output=True, text=True)
    assert push.returncode == 0, push.stderr
    assert ts.ssh("git -C /srv/app.git rev-parse --verify -q main").returncode == 0


@e2e
def test_reset_gives_a_fresh_copy(host_before):
    assert ts.ssh("touch /root/marker").returncode == 0
    ts.reset()
    assert ts.ssh("test -e /root/marker").returncode == 1
    assert ts.ssh("command -v ufw").returncode != 0


@e2e
def test_down_restores_the_host_exactly_and_is_idempotent(host_before):
    ts.ensure_up()
    ts.down()
    assert host_snapshot() == host_before
    assert not ts.is_running()
    again = ts.run_script("down")
    assert again.returncode == 0 and host_snapshot() == host_before
