"""Files: atomic writes, strict JSON records and the schema of a run file, weight files, the checks
of output paths, and disk errors (a full disk is bad environment, exit 2, not a bug).

The lowest room of ``reports``: it imports no other room (only ``reports.errors``).
"""
