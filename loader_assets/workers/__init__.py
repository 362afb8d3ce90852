"""The Qserv cluster the loader writes to: czar and worker MariaDB servers.

- `connection` a `Server` (role, name, URL): its connections, and its failures as problems naming it
- `cluster` the czar and workers, resolved once, and chunk placement (Qserv's family rule) at the czar
- `ddl` tables, databases and the director index; `attempt_partitions` the partition of each load attempt
- `load_data` one file into one table with LOAD DATA LOCAL INFILE; `formats` record counting and Parquet
  streaming; `fingerprint` a key column's fingerprint; `census` counts and keys read back for validation;
  `statements` what this process runs on the servers (killed on an interrupt, watched for stalls)
- `local` local mariadbd servers for the demo and the tests
"""
