"""Wallets: one per user, opened with the signup grant."""

from __future__ import annotations

from hub.identity.models import User
from payments.ledger import ISSUANCE, Ledger, WalletLine, wallet_code


class Wallets:
    def __init__(self, ledger: Ledger, signup_grant: int) -> None:
        self._ledger = ledger
        self._signup_grant = signup_grant

    async def open(self, user: User) -> None:
        """Give a new account its signup grant, once however often this runs (at
        registration, and again on first use should that have failed)."""
        if self._signup_grant <= 0:
            return
        await self._ledger.transfer_once(
            kind="signup_grant",
            source=ISSUANCE,
            target=wallet_code(user.id),
            amount=self._signup_grant,
            dedupe_key=f"signup:{user.id}",
            memo="Welcome to Cohort",
        )

    async def balance(self, user: User) -> int:
        await self.open(user)
        return await self._ledger.balance(user.id)

    async def history(self, user: User, *, before: int | None, limit: int) -> list[WalletLine]:
        await self.open(user)
        return await self._ledger.history(user.id, before=before, limit=limit)
