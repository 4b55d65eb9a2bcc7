from herald.management.commands._refused import refused_command

Command = refused_command("create_missing_schemas", "herald migrate_schemas")
