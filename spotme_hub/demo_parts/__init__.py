"""Pieces of `spotme-hub demo`. Each module defines ``part(demo)``: an async context manager
(``@contextlib.asynccontextmanager``) that starts a simulator before the hub starts (setting
``demo.env`` values that ``configs/demo.yaml`` reads as ``${NAME}``), may start feeding tasks with
``demo.spawn(...)`` once ``demo.hub`` exists, and cleans up after its ``yield``."""
