"""Scheduled editions: rules, local-time waves, runs and the APScheduler service.

Modules: :mod:`~digest.scheduling.rules` (schedule grammar → triggers),
:mod:`~digest.scheduling.waves` (when each reader's copy is due with
``local_time = true``), :mod:`~digest.scheduling.runs` (one run: ingest, send,
record) and :mod:`~digest.scheduling.service` (``digest scheduler``: APScheduler
with its job store on the project's database).  Nothing is imported here, so
``digest.config`` can use the rules without pulling in the rest.
"""
