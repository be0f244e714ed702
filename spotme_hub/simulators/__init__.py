"""Simulators of devices and systems the hub talks to (for `spotme-hub simulate`, the demo and tests)."""
