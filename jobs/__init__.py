"""The scheduler process: `python -m jobs` (see jobs/schedule.py for every trigger).

Each job module is thin: it opens an app context and calls one service. Any number of these
processes may run against one PostgreSQL database: the services' database claims keep every
message sent once, and the jobs that must stay single (re-plan, reconcile, provider pull) take a
PostgreSQL advisory lock, so the in-memory job stores never need to agree.
"""
