"""The ``tfparity`` command line: parity checks, diagnosis, training experiments, reports.

Rooms by role, each importing only the rooms before it (``parity_tests/test_code_hygiene.py``):

1. ``files``: atomic writes, strict JSON records, weight files, output-path checks;
2. ``experiment``: the course's protocol, data sets, training one run, weight drift, the sweep;
3. ``measure``: NumPy next to TensorFlow in one process, busy competitor processes, the
   report's timing and design-decision phases;
4. ``analysis``: tables, statistics and verdicts from finished runs (no files, no printing);
5. ``render``: text, Markdown, figures and the composition of report.md;
6. ``commands``: one module per subcommand (parse, call, print); only ``cli`` imports them.

``errors`` and ``environment`` sit below every room; ``cli`` is the entry point above all.
"""
