"""Demo accounts for the embedded default (``make run``)."""

from __future__ import annotations

from dataclasses import dataclass

from hub.identity.manager import IdentityManager


@dataclass(frozen=True, slots=True)
class DemoAccount:
    role: str
    email: str
    password: str
    display_name: str


DEMO_ACCOUNTS = (
    DemoAccount("admin", "admin@example.com", "hub-keeper-2026", "Ada Admin"),
    DemoAccount("verified teacher", "teacher@example.com", "chalk-board-2026", "Tomás Teacher"),
    DemoAccount("student", "student@example.com", "study-buddy-2026", "Sam Student"),
)


async def seed_demo_accounts(identity: IdentityManager) -> tuple[DemoAccount, ...]:
    """Create (or reset) the demo accounts; safe to run on every start."""
    for account in DEMO_ACCOUNTS:
        await identity.ensure_account(
            account.email,
            account.password,
            account.display_name,
            admin=account.role == "admin",
            teacher=account.role == "verified teacher",
        )
    return DEMO_ACCOUNTS
