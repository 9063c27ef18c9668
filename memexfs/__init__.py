"""MemexFS: a semantic filesystem. As a library: ``memexfs.open(vault).search("...")``."""

from memexfs.api import Memex, NotIndexed, Result, Results, open

__version__ = "0.1.0"

__all__ = ["Memex", "NotIndexed", "Result", "Results", "__version__", "open"]
