"""Experiments: the course's protocol, its data sets, training one run, the weight drift every
run records, and the sweep that runs them on an executor (``sweep``).

Imports ``files`` only among the rooms.
"""
