"""Subscriber management: lists, segments, preferences and consent.

This package stands alone: it never imports ``digest``.  Functions take a
SQLAlchemy ``Session`` and leave committing to the caller unless they say so.
"""
