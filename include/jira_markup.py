"""Text for Jira's wiki renderer: what an alert or a model wrote can never become markup.

Jira renders issue descriptions and comments as wiki markup: ``[text|url]`` is a link, ``[~name]`` a
mention, ``{html}`` and other macros run, ``!url!`` embeds an image. Every such character in text from
an alert, a device or a model is escaped with a backslash; links come only from :func:`link`.
"""

from __future__ import annotations

import re

# What lets text act: links and mentions ([...]), macros ({html}, {color}), images (!...!), tables (|)
# and the escape itself. Text effects (*bold*, -strike-) only change looks, and device ids are full of
# hyphens and underscores: escaping those would make every description hard to read.
_MARKUP = re.compile(r"([\\\[\]{}|!~])")


def jira_escape(text: str) -> str:
    """Return `text` with every wiki markup character escaped, so it renders as written."""
    return _MARKUP.sub(r"\\\1", text)


def link(label: str, url: str) -> str:
    """Return the product's own link, its label escaped (the URL is ours)."""
    return f"[{jira_escape(label)}|{url.replace('|', '%7C').replace(']', '%5D')}]"
