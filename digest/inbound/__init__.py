"""Mail coming back: bounces, spam complaints and unsubscribe requests, for SMTP sending.

``digest inbound`` receives them over LMTP or SMTP from the MTA (:mod:`.server`) or
polls a mailbox over IMAP (:mod:`.imap`); each message is read once
(:mod:`.classify`: :mod:`.bounces` for DSNs and MTA notices, :mod:`.feedback` for ARF
reports), matched to its reader and edition (:mod:`.match`, by the VERP token of
:mod:`digest.delivery.verp` first) and acted on (:mod:`.policy`) by
:mod:`.process`.
"""
