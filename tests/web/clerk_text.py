"""What a clerk reads on a page, and the English in it: text and the attributes a browser shows (title,
placeholder, aria-label, alt), without markup, scripts, styles or <code> (commands to type)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

# Technical terms a clerk meets as they are, in Chinese documents too.
ALLOWED_WORDS = frozenset(
    {
        "PEM", "OCSP", "USBKEY", "CSR", "CRL", "URL", "Email", "PKCS", "PDF", "JPEG", "PNG", "KB", "MB",
        "CSV", "CA", "ECC", "RSA",
        # The service's own Chinese messages write the key as "USB Key" and its PINs as PIN (管理员PIN).
        "USB", "Key", "PIN",
    }
)  # fmt: skip
_SHOWN_ATTRIBUTES = frozenset({"title", "placeholder", "aria-label", "alt"})
_SKIPPED_ELEMENTS = frozenset({"script", "style", "code"})
# A run of two or more Latin letters standing alone (not part of a serial or code such as 3F2AB9 or SM2).
_WORD = re.compile(r"(?<![0-9A-Za-z_])[A-Za-z]{2,}(?![0-9A-Za-z_])")
_JINJA = re.compile(r"\{#.*?#\}|\{%.*?%\}|\{\{.*?\}\}", re.DOTALL)


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.skipping = 0
        self.read: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_ELEMENTS:
            self.skipping += 1
        self.read += [value for name, value in attrs if name in _SHOWN_ATTRIBUTES and value]

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_ELEMENTS and self.skipping:
            self.skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.read.append(data)


def read_text(html: str) -> str:
    reader = _Reader()
    reader.feed(html)
    reader.close()
    return "\n".join(reader.read)


def english_words(html: str, *, data: tuple[str, ...] = ()) -> set[str]:
    """Latin words a clerk would read in ``html`` that are not allowed technical terms; ``data`` are values
    the page shows as stored (an e-mail address, a key model), left out."""
    text = read_text(html)
    for value in data:
        text = text.replace(value, " ")
    return {w for w in _WORD.findall(text) if w not in ALLOWED_WORDS}


def template_words(source: str) -> set[str]:
    """:func:`english_words` of a template's own text: its Jinja tags, expressions and comments left out (what
    they print is checked on rendered pages)."""
    return english_words(_JINJA.sub(" ", source))
