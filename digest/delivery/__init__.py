"""Delivery: the ledger, the one send loop, and the outbox, SMTP and SendGrid backends."""
