#!/bin/sh
# Run on the server over ssh by the tova client (`sh -c "$(cat this)" sh ARGS`).
# Facts about the server in one round trip, as key=value lines.
# $1 = tova root, $2 = app (may be empty). Nothing is interpolated into this script.
echo "uid=$(id -u)"
echo "user=$(id -un)"
if [ "$(id -u)" != 0 ]; then
  if sudo -n true >/dev/null 2>&1; then echo sudo=1; else echo sudo=0; fi
fi
if command -v python3 >/dev/null 2>&1; then
  echo python3=1
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 && echo venv=1
  python3 -c 'import sys, platform; print("pyver=%d.%d" % sys.version_info[:2]); print("machine=" + platform.machine()); print("libc=" + platform.libc_ver()[1])' 2>/dev/null
fi
command -v apt-get >/dev/null 2>&1 && echo apt=1
command -v git-receive-pack >/dev/null 2>&1 && echo git=1
[ -x "$1/toolkit/bin/tova-release" ] && echo toolkit=1
# What the first provisioning would install (the plan estimates its disk and time).
command -v caddy >/dev/null 2>&1 && echo caddy=1
[ -x /usr/local/bin/bun ] && echo bun=1
command -v pg_ctlcluster >/dev/null 2>&1 && echo postgresql=1
command -v redis-server >/dev/null 2>&1 && echo redis=1
awk '$1 == "MemTotal:" { printf "mem=%.0f\n", $2 * 1024 }' /proc/meminfo 2>/dev/null
[ -n "$2" ] && [ -d "$1/apps/$2/repo.git" ] && echo repo=1
# The server settings file, verbatim after a marker line and last: the plan reads it with
# the server's parser even before the toolkit is installed.
if [ -f "$1/config.toml" ]; then
  settings=$(cat -- "$1/config.toml" 2>/dev/null || sudo -n cat -- "$1/config.toml" 2>/dev/null) &&
    printf -- '--- config.toml\n%s\n' "$settings"
fi
exit 0
