"""Deferrable waits: a waiting task holds no worker slot."""
