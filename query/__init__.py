"""Query side of MemexFS: parse a /q folder name, search the index, one result per file.

``query.parse.parse(name, today)`` -> ``Query``; ``query.engine.SearchEngine(store,
encoder).search(query)`` -> ``SearchResult`` of ``FileHit``; ``.related(path)`` for files like a
given one. Nothing is imported here: the mount imports the parser, not the engine (numpy).
"""
