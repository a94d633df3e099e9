"""Files: atomic writes, strict JSON records, weight files and the checks of output paths.

The lowest room of ``reports``: it imports no other room (only ``reports.errors``).
"""
