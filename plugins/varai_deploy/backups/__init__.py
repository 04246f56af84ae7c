"""Database backups: consistent PostgreSQL dumps in a bucket, each proven by a restore.

``postgres`` takes the snapshot, its figures and the dump, and restores into a scratch database;
``catalog`` names and reads what is in the bucket; ``retention`` decides what may go. The
``database_backup`` DAG drives them through ``operators.backup``.
"""
