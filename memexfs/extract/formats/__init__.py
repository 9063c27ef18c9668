"""The parser registry: one module per format family, each registering its functions by doc type.

Importing this package imports every format module, so :func:`parse` knows all of them.
"""

from memexfs.extract.formats import mail, markup, pdf, plain, structured, word
from memexfs.extract.formats.base import (
    ExtractionError,
    Job,
    Parsed,
    Parser,
    has_parser,
    parse,
    register,
)

__all__ = [
    "ExtractionError",
    "Job",
    "Parsed",
    "Parser",
    "has_parser",
    "mail",
    "markup",
    "parse",
    "pdf",
    "plain",
    "register",
    "structured",
    "word",
]
