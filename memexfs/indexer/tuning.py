"""Tunables of the indexer, read as ``tuning.NAME`` at call time so tests can patch them here."""

DEBOUNCE_S = 0.25
BATCH_FILES = 32  # at most this many files per encoder call
EMBED_TEXTS = 64  # hand a group to the encoder once this many texts are ready
MAX_ERRORS_SHOWN = 200  # the stats xattr must stay well under the 64 KiB xattr limit
MAX_WARNINGS_SHOWN = 50  # files whose extraction warnings the stats list (all are counted)
MAX_WARNINGS_KEPT = 3  # warnings kept in memory per file (the catalog has them all)
MAX_WARNING_CHARS = 160
WATCH_BACKOFF_S = 0.5  # first restart of a failed vault watcher; doubles per failure in a streak
WATCH_BACKOFF_MAX_S = 60.0  # ... up to this (each restart also rescans: a slow poll, in effect)
WATCH_QUIET_S = 60.0  # failures closer than this are one streak: one log line
ECHO_CHECK_BATCH = 256  # paths checked per trio step (each check is one lstat)
TRANSIENT_RETRY_S = 10.0  # a file whose extraction failed for a worker-side reason is tried again
INDEX_RETRY_S = 5.0  # files that met an unavailable index (down, full) wait this long, doubling
INDEX_RETRY_MAX_S = 120.0
