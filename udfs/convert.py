"""Executor-side body conversion: HTML and RTF note bodies -> plain text (the text every later offset refers to).

Libraries (maintained, pure Python, no native build): BeautifulSoup 4 with the standard-library `html.parser`
(tolerant of the broken markup hospital exports produce; html2text was not chosen because it emits Markdown, which
would put `*`/`#` into the stored note), and `striprtf` for RTF (handles code pages, \\'xx and \\uN escapes and
ignorable destinations such as font tables).
"""

from __future__ import annotations

import re

import pandas as pd

PLAIN, HTML, RTF = "plain", "html", "rtf"
RESULT_TYPE = "note_text string, note_source_format string, conversion_error string"

_RTF_HEAD = re.compile(r"^\s*\{\\rtf", re.IGNORECASE)
_HTML_HEAD = re.compile(r"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body)\b", re.IGNORECASE | re.DOTALL)
# Markup tags (opening or closing) that do not occur in clinical prose; "PCR < 5 mg" or "<3 cm" never match.
_HTML_TAG = re.compile(r"</?(p|div|br|span|table|tr|td|th|b|i|u|strong|em|font|ul|ol|li|h[1-6]|pre)\b[^<>]{0,200}>",
                       re.IGNORECASE)
_BLOCK = ("p", "div", "br", "li", "tr", "table", "ul", "ol", "pre", "blockquote", "section", "article", "header",
          "footer", "title", "h1", "h2", "h3", "h4", "h5", "h6", "dt", "dd")
_CELL = ("td", "th")


def detect_format(text: str | None) -> str:
    """'rtf', 'html' or 'plain' from the body itself (exports rarely say which)."""
    if not text:
        return PLAIN
    head = text[:2000]
    if _RTF_HEAD.match(head):
        return RTF
    if _HTML_HEAD.match(head) or len(_HTML_TAG.findall(head)) >= 2:
        return HTML
    return PLAIN


def _tidy(text: str) -> str:
    """Trailing spaces off each line, no more than one blank line in a row, no leading/trailing blank lines."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\xa0", " ")
    text = re.sub(r"[ \t]+\n", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip("\n")


def html_to_text(html: str) -> str:
    """Visible text of an HTML body, one line per block element (scripts, styles and comments dropped)."""
    from bs4 import BeautifulSoup, Comment

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "head", "noscript", "template"]):
        tag.decompose()
    for comment in soup.find_all(string=lambda s: isinstance(s, Comment)):
        comment.extract()
    for tag in soup.find_all(_BLOCK):
        if tag.name == "br":
            tag.replace_with("\n")
        else:
            tag.insert_after("\n")
            tag.insert_before("\n")
    for tag in soup.find_all(_CELL):
        tag.insert_after("\t")
    return _tidy(soup.get_text())


def rtf_to_text(rtf: str) -> str:
    """Plain text of an RTF body."""
    from striprtf.striprtf import rtf_to_text as strip

    return _tidy(strip(rtf, errors="strict"))


def to_plain_text(text: str | None) -> tuple[str | None, str, str | None]:
    """(stored text, source format, error): plain text unchanged; HTML/RTF converted; error = reason, never content."""
    fmt = detect_format(text)
    if fmt == PLAIN or text is None:
        return text, PLAIN, None
    try:
        out = html_to_text(text) if fmt == HTML else rtf_to_text(text)
    except Exception as exc:  # noqa: BLE001 - any converter failure quarantines that one row, never the job
        return None, fmt, f"{fmt} body could not be converted to text ({type(exc).__name__})"
    if not out.strip():
        return None, fmt, f"no text left after {fmt} conversion"
    if fmt == RTF and _RTF_HEAD.match(out):
        return None, fmt, "rtf body could not be converted to text (control words left)"
    return out, fmt, None


def convert_series(texts: pd.Series) -> pd.DataFrame:
    """Vectorised to_plain_text over a pandas Series (the body of the pandas_udf)."""
    rows = [to_plain_text(t if isinstance(t, str) else None) for t in texts]
    return pd.DataFrame(rows, columns=["note_text", "note_source_format", "conversion_error"])


def make_convert_udf():
    """Thin pandas_udf around convert_series: string -> struct<note_text, note_source_format, conversion_error>."""
    from pyspark.sql.functions import pandas_udf

    return pandas_udf(convert_series, RESULT_TYPE)
