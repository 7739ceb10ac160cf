"""Coins: the double-entry ledger, wallets, idempotency keys, top-ups through a payment provider
and the profile shop."""
