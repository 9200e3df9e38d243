"""Delivery: the ledger, the one send loop, and the backends.

Modules: :mod:`~digest.delivery.base` (the backend interface and its errors),
:mod:`~digest.delivery.registry` (backends by name, and which one a send uses),
:mod:`~digest.delivery.outbox`, :mod:`~digest.delivery.smtp`,
:mod:`~digest.delivery.sendgrid` (the backends), :mod:`~digest.delivery.loop`
(the send loop, its options and rate limiter), :mod:`~digest.delivery.ledger`
(every state change a committed step), :mod:`~digest.delivery.waves`
(local-time waves), :mod:`~digest.delivery.envelopes` (what the messages of a
variant share) and :mod:`~digest.delivery.message` (MIME and headers).
"""
