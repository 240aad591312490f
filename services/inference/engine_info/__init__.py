"""How this inference process serves its models: the measured configuration, for admins."""
