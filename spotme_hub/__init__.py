"""spotme-hub: device and system integration hub for SPOT-Me attendance."""

__version__ = "0.1.0"
