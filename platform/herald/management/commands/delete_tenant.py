from herald.management.commands._refused import refused_command

Command = refused_command("delete_tenant", "herald revoke_key on its keys (Herald has no organisation deletion yet)")
