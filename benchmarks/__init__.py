"""Benchmarks: scripts that measure bestiary and print the figure with its method."""
