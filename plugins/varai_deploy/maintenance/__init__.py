"""The monthly maintenance window's steps, as library functions the maintenance DAGs call from tasks."""
