"""CLI command modules: each defines `register(cli)` and is loaded by `spotme_hub.cli`."""
