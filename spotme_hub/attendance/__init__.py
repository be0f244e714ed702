"""Attendance days: each officer's daily status from the punches of every source, by Malaysian
public-service rules (`docs/days.md`).

Reads the store's records and keeps its own tables (the days, with their change sequence, and
the facts pushed over the API). `Attendance` (`part.py`) is the feature's face to the
composition root: its tables, routes and outbox, through the same abilities a device kind has;
its commands are in `commands.py`.
"""
