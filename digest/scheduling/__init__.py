"""Scheduled editions: runs and the APScheduler service (above the sender).

Modules: :mod:`~digest.scheduling.runs` (one run: ingest, send through the
:class:`~digest.sender.Sender`, record) and :mod:`~digest.scheduling.service`
(``digest scheduler``: APScheduler with its job store on the project's
database).  What lower layers need lives below: the schedule grammar in
:mod:`digest.schedule_rules` (``digest.config`` validates with it) and
local-time waves in :mod:`digest.delivery.waves`.
"""
