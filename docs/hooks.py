"""MkDocs hook: the docstrings are written for both the terminal (``help()``) and this site, in
reStructuredText's roles (``:func:`name```) and literal-block markers (``text::``); on the site the
role prefixes are dropped and ``::`` before a code block becomes ``:``."""

from __future__ import annotations

import re

ROLE = re.compile(r":(?:func|class|meth|data|mod|attr|obj|exc):(?=<code)")
LITERAL = re.compile(r"::(\s*</p>)")


def on_page_content(html: str, **_: object) -> str:
    return LITERAL.sub(r":\1", ROLE.sub("", html))
