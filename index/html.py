"""Saved decision web pages, turned into the line format of the text exports.

Rather than a second parser, the page is rewritten as the text export would show it (headings as
bare lines, top-level ``<ol>`` items as ``  1.``, nested items deeper, ``<ul>`` items as bullets),
so both inputs go through the one parser and give the same ``Decision``.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_BLOCKS = {"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "li", "br", "tr", "section", "article", "dd", "dt"}
_SKIP = {"script", "style", "noscript", "nav", "footer", "template", "svg", "button", "form", "head"}


class _PageText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.current: list[str] = []
        self.lists: list[str] = []  # stack of "ol"/"ul"
        self.skip_depth = 0
        self.prefix = ""

    def _flush(self) -> None:
        text = re.sub(r"\s+", " ", "".join(self.current)).strip()
        if text:
            self.lines.append(self.prefix + text)
        self.current = []
        self.prefix = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip_depth += 1
            return
        if self.skip_depth:
            return
        if tag in ("ol", "ul"):
            self._flush()
            self.lists.append(tag)
        elif tag == "li":
            self._flush()
            ols = sum(1 for t in self.lists if t == "ol")
            if self.lists and self.lists[-1] == "ul":
                self.prefix = "  • "
            elif ols <= 1:
                self.prefix = "  1. "
            else:
                self.prefix = "      1. "
        elif tag in _BLOCKS:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
            return
        if self.skip_depth:
            return
        if tag in ("ol", "ul"):
            self._flush()
            if self.lists:
                self.lists.pop()
        elif tag in _BLOCKS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if not self.skip_depth:
            self.current.append(data)


def html_to_text(html: str) -> str:
    """The text-export form of a saved decision page."""
    page = _PageText()
    page.feed(html)
    page.close()
    page._flush()
    return "\n".join(page.lines) + "\n"
