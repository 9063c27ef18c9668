"""The indexer's status mirror keeps per-status counts equal to a full recount."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memexfs.indexer import StatusMirror

pytestmark = pytest.mark.filterwarnings("error")

PATHS = st.sampled_from(["a", "b", "c", "d/e"])
STATUSES = st.sampled_from(["pending", "indexed", "failed", "metadata-only"])
OPS = st.lists(st.one_of(st.tuples(st.just("set"), PATHS, STATUSES),
                         st.tuples(st.just("pop"), PATHS, STATUSES),
                         st.tuples(st.just("del"), PATHS, STATUSES)), max_size=40)


@given(OPS)
def test_counts_follow_every_change(ops: list[tuple[str, str, str]]) -> None:
    m = StatusMirror()
    for op, path, status in ops:
        if op == "set":
            m[path] = status
        elif op == "pop":
            m.pop(path, None)
        elif path in m:
            del m[path]
    assert +m.counts == Counter(m.values())


def test_bulk_methods_keep_counts() -> None:
    m = StatusMirror()
    m.update({"a": "indexed", "b": "pending"}, c="failed")
    m |= {"a": "pending"}
    assert m.setdefault("b", "indexed") == "pending"
    assert m.setdefault("d", "indexed") == "indexed"
    m.popitem()
    assert +m.counts == Counter(m.values())
    m.clear()
    assert not m
    assert +m.counts == Counter()


def test_pop_without_default_still_raises() -> None:
    with pytest.raises(KeyError):
        StatusMirror().pop("missing")
