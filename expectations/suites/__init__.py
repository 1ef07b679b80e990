"""Committed Great Expectations suites (JSON), one file per suite.

This folder is a package only so that wheels ship the JSON files (package data ``*.json``).
"""
