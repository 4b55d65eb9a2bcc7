from herald.management.commands._refused import refused_command

Command = refused_command("create_tenant", "herald create_organization SLUG --name NAME")
