"""Built-in plugins, one small package each, written against the public hooks only."""
