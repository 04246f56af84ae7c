"""Async triggers: every wait of a release runs here, in the triggerer, holding no worker slot."""
