"""The ``tfparity`` command line: parity checks, diagnosis, training experiments, reports.

``reports.load_report(DIR)`` opens a finished report in Python (loaded on first use, so the
command line does not import pandas and matplotlib to start).
"""


def __getattr__(name: str):
    if name in ("load_report", "Report"):
        from reports import report_view

        return getattr(report_view, name)
    raise AttributeError(f"module 'reports' has no attribute {name!r}")
