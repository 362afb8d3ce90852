"""Knowledge of Qserv itself: qserv-ingest's `metadata.json` (version 12 or later) and table JSON (`metadata`),
`LOAD DATA` dialects spelled as MySQL string literals (`dialect`), chunk geometry and overlaps (`geometry`), reading
key columns back from chunk files (`files`) and sample cases (`sample`)."""
