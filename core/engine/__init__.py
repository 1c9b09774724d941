"""The run engine: one training and evaluation loop for every architecture, dataset and strategy.

Everything heavy (torch) is imported inside the modules of this package, never by
``import bestiary``.
"""
