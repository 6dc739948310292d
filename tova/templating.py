"""The one jinja2 environment for screens (generated server files use tova.render)."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def _env():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("tova", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
    )


def render_template(name: str, **context: object) -> str:
    return _env().get_template(name).render(**context)
