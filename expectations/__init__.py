"""Data contracts of the platform, checked with Great Expectations before data moves on.

The suites are committed JSON under ``expectations/suites/``; :mod:`expectations.validation`
loads them into a file-mode Great Expectations context under ``settings.storage.gx_dir`` and runs
them through a Checkpoint. Importing this package imports neither Great Expectations nor
anything that touches the disk.
"""
