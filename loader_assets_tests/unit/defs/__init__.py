"""Fast unit tests: a SQLite catalog in tmp_path and hand-written fakes; no server."""
