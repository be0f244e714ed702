"""Store-and-forward to the SPOT-Me core: the forwarder, its dead letters and a reference core.

`Forwarding` (`part.py`) is the feature's face to the composition root: its table, routes and
demo part, through the same abilities a device kind has; its commands are in `commands.py`.
"""
