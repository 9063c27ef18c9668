"""Extractive summaries: sentence splitting, citations, MMR, the output format."""

from __future__ import annotations

import numpy as np
import pytest

from query.summary import (
    Picked,
    Sentence,
    Tuning,
    format_summary,
    merge_bodies,
    select,
    split_sentences,
    summarize,
    summarize_topic,
)
from tests.fakes import HashEncoder

pytestmark = pytest.mark.timeout(30)

NOTE = """# Lecture 2: The French Revolution

**Date:** September 7, 2023
**Teacher:** Mr. Pruitt

- The monarchy was abolished in 1792 and Louis XVI was
  guillotined in January 1793.
- The Declaration of the Rights of Man proclaimed liberty. It also proclaimed equality.

| col | col |
|-----|-----|

## Causes

By 1789 France was nearly bankrupt after expensive wars. Bad harvests pushed bread prices up.
Dr. Smith and J. Doe wrote about it, e.g. in their book.

```
code = "Not a sentence. Really not."
```
"""


def test_split_keeps_lines_sections_and_abbreviations() -> None:
    sents = split_sentences(NOTE, "n.md")
    texts = [s.text for s in sents]
    assert "The monarchy was abolished in 1792 and Louis XVI was guillotined in January 1793." \
        in texts  # wrapped lines joined
    wrapped = next(s for s in sents if s.text.startswith("The monarchy"))
    assert wrapped.line == 6
    assert "It also proclaimed equality." in texts
    dr = next(s for s in sents if s.text.startswith("Dr. Smith"))
    assert dr.text == "Dr. Smith and J. Doe wrote about it, e.g. in their book."  # no splits
    assert dr.line == 16
    assert not any("Not a sentence" in t or "col" in t or t.startswith("Lecture") for t in texts)
    causes = next(s for s in sents if s.text.startswith("By 1789"))
    assert causes.lead
    assert causes.section == 2
    assert sents[0].lead
    assert sents[0].text.startswith("**Date:**")


def test_summary_sentences_are_verbatim_and_cited() -> None:
    picks = summarize(NOTE, "n.md", HashEncoder())
    assert 1 <= len(picks) <= 5
    flat = " ".join(NOTE.split())
    lines = NOTE.splitlines()
    for p in picks:
        assert p.path == "n.md"
        assert p.text in flat
        assert p.text.split()[0] in lines[p.line - 1]  # the cited line holds its start
        assert not p.text.startswith("**")  # label rows are no summary lines
    # deterministic, in document order
    assert summarize(NOTE, "n.md", HashEncoder()) == picks
    assert [p.line for p in picks] == sorted(p.line for p in picks)


def test_mmr_never_picks_a_near_duplicate() -> None:
    sents = [Sentence(t, i + 1, i, 0, i == 0) for i, t in enumerate(
        ["cells divide by mitosis into two cells", "cells divide by mitosis into two cells!",
         "the cell divides by mitosis into two daughter cells", "banks lend money at interest",
         "interest rates rise with inflation"])]
    vecs = HashEncoder().encode([s.text for s in sents])
    picks = select(sents, vecs, Tuning(), k=3)
    texts = [p.text for p in picks]
    assert len(texts) == 3
    assert not ({sents[0].text, sents[1].text} <= set(texts))
    v = {s.text: vecs[i] for i, s in enumerate(sents)}
    for a in texts:
        for b in texts:
            if a != b:
                assert float(v[a] @ v[b]) < Tuning().duplicate_cos


def test_position_prior_breaks_ties_toward_the_lead() -> None:
    sents = [Sentence("alpha beta gamma delta", 1, 0, 0, True),
             Sentence("alpha beta gamma delta epsilon", 2, 1, 0, False)]
    vecs = np.stack([np.eye(4, dtype=np.float32)[0]] * 2)
    assert [p.line for p in select(sents, vecs, k=1)] == [1]


def test_topic_summary_spans_files_and_cites_each() -> None:
    docs = [("a.md", "Mitosis splits one cell into two cells. Cells copy their DNA first."),
            ("b.md", "Meiosis makes four cells with half the chromosomes. It shuffles genes."),
            ("c.md", "Cells need energy from mitochondria. Respiration makes ATP in cells.")]
    enc = HashEncoder()
    centroid = enc.encode(["cells"])[0]
    picks = summarize_topic(docs, centroid, enc, k=4)
    assert {p.path for p in picks} <= {"a.md", "b.md", "c.md"}
    assert len({p.path for p in picks}) >= 2
    assert all(sum(q.path == p.path for q in picks) <= 2 for p in picks)


def test_format_and_merge_bodies() -> None:
    assert format_summary([Picked("A b c.", "x/y.md", 3, 0.5)]) == "- A b c.  [x/y.md:3]\n"
    assert merge_bodies(["one two three", "two three four", "five"]) == \
        "one two three four\n\nfive"
    assert merge_bodies([]) == ""


def test_a_title_line_heads_the_document_and_is_no_sentence() -> None:
    text = "QUIZ CARDS - THE RENAISSANCE\n\nThe Renaissance began in Italy. It spread north.\n"
    sents = split_sentences(text, "r.txt")
    assert [s.text for s in sents] == ["The Renaissance began in Italy.", "It spread north."]
    assert sents[0].lead
    assert sents[0].section == 1
    assert sents[0].line == 3
