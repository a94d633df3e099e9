"""The ``tfparity`` command line: parity checks, diagnosis, training experiments, reports."""
