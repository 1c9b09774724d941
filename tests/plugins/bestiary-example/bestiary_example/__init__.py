"""bestiary-example: an example third-party plugin for bestiary."""

__version__ = "0.3.1"
