"""Rendering: results as text, Markdown and figures, the composition of a report directory
(``writer``) and a finished one opened in Python (``report_view``: ``reports.load_report``);
every number formatted through ``formatting``.

Imports ``files``, ``experiment`` and ``analysis`` among the rooms; computes no measurement.
"""
