"""Qserv's own integration inputs (lsst-dm/qserv-ingest `itest/datasets`, found through `LOADER_QSERV_ITEST`)
turned into loadable cases: case01's real rows partitioned with the project's geometry, rows generated from the
table JSON of the schema-only cases (DC2, case03)."""
