"""django-tenants' migrate_schemas, which also keeps the provisioning template current."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django_tenants.management.commands.migrate_schemas import GET_EXECUTOR_FUNCTION, MigrateSchemasCommand

from tenants.provisioning import spare_pool_drop_stale, spare_pool_fill, template_create_if_missing, template_schema


class Command(MigrateSchemasCommand):
    def handle(self, *args: Any, **options: Any) -> None:
        from django.core.management.base import CommandError

        from herald.pooler import pooler_refusal

        refusal = pooler_refusal()
        if refusal:
            raise CommandError(refusal)
        if options.get("executor") == "multiprocessing" and settings.DATABASE_POOL_SIZE:
            # Its workers are forked: a psycopg pool forked without its threads never hands out a connection,
            # and the migration hangs (seen in infra/bench/schemas.py).
            raise CommandError("--executor multiprocessing needs DATABASE_POOL_SIZE=0 (plain connections)")
        super().handle(*args, **options)
        if self.sync_tenant and not options.get("schema_name"):
            template_create_if_missing()
            executor = GET_EXECUTOR_FUNCTION(codename=self.executor)(self.args, self.options)
            executor.run_migrations(tenants=[template_schema()])
            # Spares made from the old template would miss these migrations.
            spare_pool_drop_stale()
            spare_pool_fill()
