"""The platform layer: the ``llmnet`` command, the launcher and the migrations.

It sits above ``services/`` and ``shared/``: it may import every service to compose the
platform (start the processes, migrate every table, seed through each service's bootstrap),
while neither ``shared/`` nor any service may import it.

    llmnet.cli          the ``llmnet`` command (run, migrate, seed, create-admin, service-token)
    llmnet.launcher     ``llmnet run``: embedded PostgreSQL/Redis, dev secrets, the supervisor
    llmnet.migrations   the one alembic history of the shared database, and upgrade_head()
"""
