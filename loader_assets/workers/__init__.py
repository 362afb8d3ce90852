"""The Qserv cluster the loader writes to: czar and worker MariaDB servers.

- `cluster` the czar and workers, resolved once, and chunk placement (Qserv's family rule) at the czar
- `connection` pymysql connections; `schema` DDL and the director index
- `load_data` one file into one table with LOAD DATA LOCAL INFILE; `partitions` per-attempt partitions;
  `formats` text-record counting and Parquet streaming; `census` counts and keys read back for validation
- `local` local mariadbd servers for the demo and the tests
"""
