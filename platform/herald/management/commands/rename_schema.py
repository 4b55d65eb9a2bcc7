from herald.management.commands._refused import refused_command

Command = refused_command("rename_schema", "nothing: an organisation's schema name is fixed when it is created")
