"""Device adapters: one folder per kind (`adapters/<kind>/`), each met through `contract.py`
and named in `registry.py`."""
