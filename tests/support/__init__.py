"""Test helpers that stand in for outside services (a SendGrid v3 contract server, …)."""
