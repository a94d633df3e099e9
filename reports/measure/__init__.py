"""Measurements beside training: NumPy next to TensorFlow in one process (``bench``), busy
competitor processes (``competitors``), and the report's timing and design-decision phases.

Imports ``files`` and ``experiment`` among the rooms.
"""
