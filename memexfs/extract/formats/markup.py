"""HTML via BeautifulSoup and lxml: the main text of a page, without its boilerplate."""

from __future__ import annotations

import re
from typing import Any

from memexfs.extract.formats.base import Job, Parsed, clean_meta, decode, register
from memexfs.extract.sniff import Sniffed

_BOILERPLATE_TAGS = ("script", "style", "noscript", "template", "svg", "nav", "header", "footer",
                     "aside", "form", "iframe", "button", "select")
_BOILERPLATE_CLASS = re.compile(
    r"cookie|consent|banner|navbar|menu|sidebar|breadcrumb|advert|promo|social|share|skip-link",
    re.I,
)
_BLOCK_TAGS = {"p", "div", "section", "article", "main", "li", "ul", "ol", "table", "tr", "br",
               "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "dl", "dt", "dd",
               "figure", "figcaption", "hr", "address", "body", "thead", "tbody", "tfoot"}


@register("html")
def parse_html(data: bytes, sniffed: Sniffed, job: Job) -> Parsed:
    """Main text of a page: boilerplate (nav, cookie banners, footers) dropped, tables as rows."""
    from bs4 import BeautifulSoup
    from bs4.element import Comment, NavigableString, Tag

    markup, codec = decode(data, sniffed.encoding)
    soup = BeautifulSoup(markup, "lxml")
    title = ""
    if soup.title and soup.title.string:
        title = " ".join(soup.title.string.split())
    meta: dict[str, str] = {"encoding": codec}
    for m in soup.find_all("meta"):
        key = str(m.get("name") or m.get("property") or "").lower()
        if key in {"description", "author", "og:title", "og:description", "date"} and m.get(
            "content"
        ):
            meta[key.replace("og:", "og_")] = clean_meta(m.get("content"))
    for node in soup.find_all(string=lambda s: isinstance(s, Comment)):
        node.extract()
    for tag in soup.find_all(_BOILERPLATE_TAGS):
        tag.decompose()
    for tag in soup.find_all(True):
        if tag.decomposed or tag.attrs is None:
            continue
        classes: Any = tag.get("class") or []
        class_list = [classes] if isinstance(classes, str) else list(classes)
        attrs = " ".join([*class_list, str(tag.get("id", "")), str(tag.get("role", ""))])
        if _BOILERPLATE_CLASS.search(attrs) and tag.name not in {"html", "body", "main"}:
            tag.decompose()
    root = soup.find("main") or soup.find("article") or soup.body or soup
    out: list[str] = []

    def walk(node: Any) -> None:
        for child in node.children:
            if isinstance(child, NavigableString):
                s = str(child)
                if s.strip():
                    out.append(" ".join(s.split()) + (" " if s[-1:].isspace() else ""))
                elif out and not out[-1].endswith((" ", "\n")):
                    out.append(" ")
                continue
            if not isinstance(child, Tag):
                continue
            name_ = child.name
            if name_ in {"td", "th"}:
                out.append(" | ")
            elif name_ in _BLOCK_TAGS:
                out.append("\n")
            if name_ and re.fullmatch(r"h[1-6]", name_):
                out.append("#" * int(name_[1]) + " ")
            elif name_ == "li":
                out.append("- ")
            walk(child)
            if name_ == "dt":
                out.append(": ")
            elif name_ in _BLOCK_TAGS:
                out.append("\n")

    walk(root)
    text = "".join(out)
    text = re.sub(r"[ \t]*\|[ \t]*", " | ", text)
    text = "\n".join(_tidy_html_line(ln) for ln in text.split("\n"))
    text = re.sub(r"(?::\s*\n+)", ": ", text)  # <dt>Label</dt><dd>value</dd> -> "Label: value"
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    if not title:
        h1 = soup.find("h1")
        title = " ".join(h1.get_text(" ").split()) if h1 else ""
    return Parsed(text=text, title=title, meta=meta)


def _tidy_html_line(line: str) -> str:
    line = " ".join(line.split())
    if line.startswith("| "):
        line = line[2:]
    return line.rstrip(" |")
