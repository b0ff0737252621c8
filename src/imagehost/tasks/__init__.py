"""The job queue: procrastinate over the service's own PostgreSQL (queue.py).

ZIP batches are tasks of the `uploads` queue, run by a worker inside
every app process (JOB_CONCURRENCY at a time), so any instance takes a job another one accepted.
The scheduled backups and scrubs are tasks of the `schedule` queue, run by `python -m imagehost
schedule` (compose's scheduler); however many schedulers there are, each tick runs once.
"""
