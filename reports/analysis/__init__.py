"""Analysis: numbers computed from finished runs (tables, statistics over seeds, the
under-/over-fitting verdicts); no files, no printing.

Imports ``experiment`` (the protocol, the weight drift) among the rooms.
"""
