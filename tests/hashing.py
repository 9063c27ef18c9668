"""Moved to ``tests.fakes``; kept while modules outside this change still import it here."""

from tests.fakes import HASH_DIM as DIM
from tests.fakes import HashEncoder, file_id, fill

__all__ = ["DIM", "HashEncoder", "file_id", "fill"]
