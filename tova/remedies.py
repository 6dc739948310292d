"""A remedy (an error's hint) as its reader can act on it.

`tova-release` knows neither the deploy environment's name nor how the user reached the
server. When the client runs it, the client says both (two variables on the command), so a
hint such as `tova deploy ENV --setup-git` names the environment, and one that is itself
a `tova-release` command shows the ssh command that runs it on the server. Streamed output
(a rollback's, say) reaches the user unchanged, so the rewrite happens on the server."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

CALLER_ENV = "TOVA_CALLER_ENV"  # the deploy environment the client works on
CALLER_SSH = "TOVA_CALLER_SSH"  # `ssh [-p PORT] user@host`, as the user would type it

_SERVER_COMMAND = re.compile(r"(?<![\w/.-])tova-release ")


def for_caller(hint: str, env: str | None, ssh: str | None) -> str:
    if env:
        hint = hint.replace("tova deploy ENV ", f"tova deploy {env} ")
    if ssh:
        hint = _SERVER_COMMAND.sub(lambda _: f"{ssh} tova-release ", hint)
    return hint


def in_tova_deploy_words(hint: str) -> str:
    """A remedy as a `tova-deploy` user types it: where the compiler's `tova` comes first on
    PATH, `tova deploy prod ...` would reach the compiler's own `deploy` subcommand, which
    deploys nothing."""
    return hint.replace("tova deploy ", "tova-deploy ").replace("tova env ", "tova-deploy env ")


def from_environ(environ: Mapping[str, str]) -> Callable[[str], str]:
    """The rewrite for this process's caller; a user on the server (or a git hook) sets
    neither variable and reads the hints as they are."""
    env, ssh = environ.get(CALLER_ENV) or None, environ.get(CALLER_SSH) or None
    return lambda hint: for_caller(hint, env, ssh)
