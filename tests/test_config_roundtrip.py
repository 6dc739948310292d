"""Property: a valid deploy block written in any legal style reads back to exactly the
configuration it spells (reader + validation together)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from tova.config import build_config
from tova.lang.reader import parse_source

LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
DOMAINS = st.lists(LABEL, min_size=1, max_size=3).map(lambda ls: ".".join(ls) + ".com")
ENV_KEYS = st.from_regex(r"[A-Z_][A-Z0-9_]{0,12}", fullmatch=True).filter(lambda k: k != "PORT")
# Env values: printable text incl. quotes, braces, $ and backslashes (escaped when written).
ENV_VALUES = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF, exclude_characters="\x7f"), max_size=20)


def quote(value: str, style: str) -> str:
    if style == "single" and "'" not in value and "\\" not in value:
        return "'" + value + "'"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("{", "\\{").replace("}", "\\}")
    return '"' + escaped + '"'


@st.composite
def blocks(draw):
    props = {
        "server": draw(st.sampled_from(["root@203.0.113.7", "deploy@host.example.com:2222", "myalias"])),
        "domain": draw(DOMAINS),
    }
    optional = {
        "instances": st.integers(1, 32),
        "memory": st.sampled_from(["256mb", "1GB", "512m", "64kb", "2g"]),
        "branch": st.sampled_from(["main", "develop", "release/v2"]),
        "health": st.sampled_from(["/healthz", "/up", "/api/health"]),
        "restart_on_failure": st.booleans(),
        "keep_releases": st.integers(1, 50),
    }
    for key, strat in optional.items():
        if draw(st.booleans()):
            props[key] = draw(strat)
    env = draw(st.dictionaries(ENV_KEYS, ENV_VALUES, max_size=4))
    sep = draw(st.sampled_from(["\n  ", "; ", " ", "\n\n  // comment\n  ", " /* c { */ "]))
    style = draw(st.sampled_from(["double", "single"]))
    parts = []
    for key, value in props.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int):
            text = str(value)
        else:
            text = quote(value, style)
        parts.append(f"{key}: {text}")
    if env:
        inner = " ".join(f"{k}: {quote(v, style)}" for k, v in env.items())
        parts.append(f"env {{ {inner} }}")
    name_quote = draw(st.sampled_from(['"prod"', "'prod'"]))
    source = f"server {{ }}\ndeploy {name_quote} {{\n  " + sep.join(parts) + "\n}\n"
    return source, props, env


@settings(max_examples=150, deadline=None)
@given(blocks())
def test_generated_blocks_read_back(case):
    source, props, env = case
    parsed = parse_source(source, "app.tova")
    cfg = build_config(parsed.deploys, "prod", "proj")
    assert cfg.server == props["server"] and cfg.domain == props["domain"]
    for key in ("instances", "branch", "health", "restart_on_failure", "keep_releases"):
        if key in props:
            assert getattr(cfg, key) == props[key]
    if "memory" in props:
        assert cfg.memory == props["memory"]
    assert cfg.app == "proj"
    assert dict(cfg.env_vars) == env
