"""loader_assets: loads Qserv catalogs (a director table, its children, regular tables, split into chunks)
into MariaDB worker nodes through Dagster, steered from an operational catalog.

The rooms, each reaching only the ones below it:

    cli.py, notebook.py  presenters: arguments and lines; frames and plots
    operations/  one function per operator action, over an explicit context (settings, store, cluster, Dagster)
    defs/        Dagster only: assets, checks, jobs, sensors, resources, the instance — adapters over engine/
    engine/      no Dagster: load (lease loop), plan (runs), validate, recovery, sweep, level state, runner
    selection/   the query language and the notebook selections
    catalog/     the operational catalog: schema, state machine, claim rules, gates, schedules, registration
    workers/     the Qserv cluster: servers, placement, DDL, LOAD DATA, attempt partitions, formats, local mariadbd
    qserv/       knowledge of Qserv itself: metadata.json v12, table JSON, dialects, geometry, samples
    levels.py, tags.py, settings.py, problems.py   level numbers, run-tag keys, the environment, expected failures
"""
