"""Side-by-side speed and memory figures: ``python -m bench`` (``make bench``).

Each measurement lives in its own module and, where memory or a second CPU
matters, runs in its own process:

* :mod:`bench.compose` — the 40-article digest's MJML through mjml-python against
  the reference Node ``mjml`` package in a warm Node process;
* :mod:`bench.delivery` — a synthetic edition delivered to a local SendGrid
  contract server (another process), phase by phase, with peak RSS;
* :mod:`bench.smtp` — ``digest send --backend smtp`` to a local aiosmtpd server, beside a
  bare smtplib loop of prebuilt messages to the same server (the wire's limit);
* :mod:`bench.ingest` — a generated RSS feed through ingestion, beside feedparser alone.

:mod:`bench.synthetic` builds the data, :mod:`bench.servers` runs the servers,
:mod:`bench.report` prints the table and writes ``bench/results.json``.
"""
