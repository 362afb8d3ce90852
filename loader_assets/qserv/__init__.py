"""Knowledge of Qserv itself: qserv-ingest's `metadata.json` (version 12 or later) and table JSON (`metadata`),
`LOAD DATA` dialects spelled as MySQL string literals (`dialect`), column types (`column_types`), chunk geometry and
overlaps (`geometry`) and sample cases (`sample`). Key columns are read back from chunk files by
`workers/fingerprint.py`."""
