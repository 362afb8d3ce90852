"""loader_assets: loads Qserv catalogs (a director table, its children, regular tables, split into chunks)
into MariaDB worker nodes through Dagster, steered from an operational catalog.

The rooms, each reaching only the ones below it:

    defs/       Dagster only: assets, checks, jobs, sensors, resources — adapters over engine/
    engine/     no Dagster: load (lease loop), plan (runs), validate (on the workers), level state, runner
    selection/  the query language and the notebook selections
    catalog/    the operational catalog: schema, state machine, claim rules, gates, schedules, registration
    workers/    the Qserv cluster: placement, DDL, LOAD DATA, partitions, formats, local mariadbd servers
    qserv/      knowledge of Qserv itself: metadata.json v12, table JSON, dialects, geometry, samples
    levels.py, tags.py, settings.py   the level numbers, the run-tag keys, the environment
"""
