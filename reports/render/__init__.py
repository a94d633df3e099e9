"""Rendering: results as text, Markdown and figures, and the composition of a report directory
(``writer``); every number formatted through ``formatting``.

Imports ``files``, ``experiment`` and ``analysis`` among the rooms; computes no measurement.
"""
