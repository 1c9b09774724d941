"""bestiary-broken: a plugin package that installs fine and fails to load."""
