"""Text extraction: what a file is and what text it holds, parsed in an isolated worker.

The modules import one way: ``model`` (the record, its status, the limits) and ``sniff`` (type by
content) at the bottom; ``formats`` (the parser registry, one module per format family) on them;
``inprocess`` (one file, in this process) on those; at the top ``worker`` (the sandboxed process's
main, ``python -m memexfs.extract.worker``) and ``pool`` (the daemon's :class:`Extractor`: owns the
workers, their timeouts and the descriptor passing). The last two never import each other: they
share only ``model`` and the JSON on the socket.
"""

from memexfs.extract.inprocess import extract_in_process
from memexfs.extract.model import Extracted, ExtractStatus, Limits
from memexfs.extract.pool import Extractor
from memexfs.extract.sniff import SNIFF_BYTES, Sniffed, detect_text_encoding, known_binary, sniff

__all__ = [
    "SNIFF_BYTES",
    "ExtractStatus",
    "Extracted",
    "Extractor",
    "Limits",
    "Sniffed",
    "detect_text_encoding",
    "extract_in_process",
    "known_binary",
    "sniff",
]
