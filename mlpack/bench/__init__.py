"""``mlpack bench`` and ``mlpack tune``: load generation, measurements, experiments and reports.

Nothing here is imported by the server; the command modules import what they use.
"""
