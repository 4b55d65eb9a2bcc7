from herald.management.commands._refused import refused_command

Command = refused_command("create_tenant_superuser", "herald createsuperuser (users live in the public schema)")
