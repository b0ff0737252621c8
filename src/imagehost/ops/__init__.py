"""The operator's side: backups and restore, consistency check and repair, statistics, schedules."""
