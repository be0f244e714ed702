"""Store-and-forward to the SPOT-Me core: the forwarder, its dead letters and a reference core."""
