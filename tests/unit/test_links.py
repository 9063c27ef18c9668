"""Links: wiki links resolved like Obsidian, relative markdown links, e-mail threads."""

from __future__ import annotations

from pathlib import Path

import pytest

from query.links import (
    LinkGraph,
    MailIds,
    PathIndex,
    build_graph,
    mail_links,
    parse_links,
    parse_mail_ids,
    read_vault_file,
)

pytestmark = pytest.mark.timeout(30)


def test_wiki_links_with_alias_heading_and_embed() -> None:
    text = "See [[Cell Biology|cells]] and [[Mitosis#Phases]].\n![[diagram.png]]\n"
    raws = parse_links(text)
    assert [(r.kind, r.target, r.line, r.text) for r in raws] == [
        ("wiki", "Cell Biology", 1, "cells"),
        ("wiki", "Mitosis", 1, "Mitosis"),
        ("wiki", "diagram.png", 2, "diagram.png"),
    ]


def test_markdown_links_decoded_and_external_ones_skipped() -> None:
    text = ("[a](../Other%20Note.md#top) [b](<with space.md>) [c](https://x.org/y.md)\n"
            "[d](mailto:a@b.c) [e](#local) ![img](pics/p.png \"title\")\n")
    raws = parse_links(text)
    assert [(r.kind, r.target, r.text) for r in raws] == [
        ("markdown", "../Other Note.md", "a"),
        ("markdown", "with space.md", "b"),
        ("markdown", "pics/p.png", "img"),
    ]


def test_links_in_code_are_not_links() -> None:
    text = "```\n[[Fenced]]\n```\nuse `[[Inline]]` but [[Real]]\n"
    assert [r.target for r in parse_links(text)] == ["Real"]


def test_wiki_resolution_by_stem_name_and_folder() -> None:
    idx = PathIndex(["A/Note.md", "B/Note.md", "B/Note.pdf", "C/scan.pdf", "Top.md",
                     "x/deep/Thing.md"])
    assert idx.wiki("note", "B/other.md") == "B/Note.md"  # same folder first, case-insensitive
    assert idx.wiki("Note", "Z/z.md") == "A/Note.md"  # then shortest path, then sort order
    assert idx.wiki("Note.pdf", "A/a.md") == "B/Note.pdf"  # a name with its extension
    assert idx.wiki("scan.pdf", "Top.md") == "C/scan.pdf"
    assert idx.wiki("scan", "Top.md") is None  # a stem alone means a note, not a PDF
    assert idx.wiki("deep/Thing", "Top.md") == "x/deep/Thing.md"
    assert idx.wiki("eep/Thing", "Top.md") is None  # folder suffix on a component boundary
    assert idx.wiki("Missing", "Top.md") is None


def test_relative_resolution() -> None:
    idx = PathIndex(["Notes/a.md", "Notes/sub/b.md", "Other Note.md", "img/p.png"])
    assert idx.relative("sub/b.md", "Notes/a.md") == "Notes/sub/b.md"
    assert idx.relative("../Other Note.md", "Notes/a.md") == "Other Note.md"
    assert idx.relative("/img/p.png", "Notes/sub/b.md") == "img/p.png"
    assert idx.relative("b", "Notes/sub/x.md") == "Notes/sub/b.md"  # .md implied
    assert idx.relative("../../../etc/passwd", "Notes/a.md") is None  # outside the vault


def test_mail_ids_and_reply_edge() -> None:
    raw = (b"Message-ID: <m2@example.org>\r\nIn-Reply-To: <m1@example.org>\r\n"
           b"References: <m0@example.org> <m1@example.org>\r\nSubject: re\r\n\r\nbody\r\n")
    ids = parse_mail_ids(raw)
    assert ids == MailIds("m2@example.org", "m1@example.org",
                          ("m0@example.org", "m1@example.org"))
    assert [r.target for r in mail_links(ids)] == ["m1@example.org"]
    # no In-Reply-To: the nearest reference first
    assert [r.target for r in mail_links(MailIds("x", "", ("a", "b")))] == ["b", "a"]
    assert parse_mail_ids(b"\xff\xfe garbage") == MailIds()


def test_graph_backlinks_threads_and_late_targets() -> None:
    g = LinkGraph()
    g.set_file("notes/a.md", parse_links("[[b]] and [[later]] and [[a]]"))
    g.set_file("notes/b.md", parse_links("back to [a](a.md)"))
    g.set_file("mail/1.eml", mail=MailIds("id1"))
    g.set_file("mail/2.eml", mail=MailIds("id2", "id1"))
    g.set_file("mail/3.eml", mail=MailIds("id3", "", ("id1", "id2")))
    assert [e.source for e in g.backlinks("notes/b.md")] == ["notes/a.md"]
    assert g.neighbours("notes/a.md") == {"notes/b.md"}  # the self-link is dropped
    assert {e.source for e in g.backlinks("mail/1.eml")} == {"mail/2.eml"}
    assert [e.target for e in g.outgoing("mail/3.eml")] == ["mail/2.eml"]  # one parent
    assert g.linked("mail/2.eml", "mail/3.eml")
    g.set_file("later.md")  # a file created later resolves the dangling link
    assert "later.md" in g.neighbours("notes/a.md")
    g.remove_file("notes/b.md")
    assert g.backlinks("notes/b.md") == []
    assert g.degree("notes/a.md") == 1


def test_build_graph_reads_the_vault_and_never_follows_symlinks(tmp_path: Path) -> None:
    (tmp_path / "Notes").mkdir()
    (tmp_path / "Notes" / "a.md").write_text("# A\nsee [[b]]\n")
    (tmp_path / "Notes" / "b.md").write_text("plain\n")
    (tmp_path / "m1.eml").write_bytes(b"Message-ID: <one@x>\n\nhi\n")
    (tmp_path / "m2.eml").write_bytes(b"Message-ID: <two@x>\nIn-Reply-To: <one@x>\n\nre\n")
    secret = tmp_path.parent / f"{tmp_path.name}-secret.md"
    secret.write_text("[[b]]\n")
    (tmp_path / "link.md").symlink_to(secret)
    g = build_graph(tmp_path, ["Notes/a.md", "Notes/b.md", "m1.eml", "m2.eml", "link.md"])
    assert sorted((e.source, e.target, e.kind) for e in g.edges()) == [
        ("Notes/a.md", "Notes/b.md", "wiki"),
        ("m2.eml", "m1.eml", "reply"),
    ]
    assert g.backlinks("Notes/b.md")[0].line == 2
    assert read_vault_file(tmp_path, "link.md") is None
