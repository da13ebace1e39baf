"""Differential privacy: Opacus DP-SGD, the privacy ledger, client-level DP and the audit."""
