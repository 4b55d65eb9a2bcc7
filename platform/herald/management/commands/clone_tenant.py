from herald.management.commands._refused import refused_command

Command = refused_command("clone_tenant", "herald create_organization SLUG (it provisions from the template schema)")
