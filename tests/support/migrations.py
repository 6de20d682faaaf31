"""Run migrations down and up inside a test, leaving the schema as every other test expects it."""

from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def migrate(target: tuple[str, str]):
    """Migrate to `target`; the apps registry of that state, for the models as they were."""
    executor = MigrationExecutor(connection)
    executor.migrate([target])
    return executor.loader.project_state([target]).apps


def migrate_to_latest() -> None:
    """Every app at its newest migration again (a test that stopped at a named one would leave the
    migrations after it unapplied for the rest of the run)."""
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
