"""The profile shop: themes, badges and avatar frames bought with coins through the ledger and
shown on the buyer's profile."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from hub.clock import Clock
from hub.db import Database
from hub.errors import Conflict, FieldError, NotFound, ValidationFailed
from hub.identity.models import User
from payments.ledger import REVENUE, Ledger, Posting
from payments.models import ProfileAppearance, ShopOwnership

Kind = Literal["theme", "badge", "frame"]
KINDS: tuple[Kind, ...] = ("theme", "badge", "frame")


@dataclass(frozen=True, slots=True)
class ShopItem:
    id: str
    kind: Kind
    name: str
    description: str
    price: int
    style: dict[str, str] = field(default_factory=dict)


# The catalog of items. Ids are stable: ownerships and appearances refer to them.
ITEMS: dict[str, ShopItem] = {
    item.id: item
    for item in (
        ShopItem(
            "theme-midnight",
            "theme",
            "Midnight",
            "A deep blue profile for night learners.",
            40,
            {"background": "#0f172a", "accent": "#38bdf8", "text": "#e2e8f0"},
        ),
        ShopItem(
            "theme-sunrise",
            "theme",
            "Sunrise",
            "Warm morning colours.",
            60,
            {"background": "#fff7ed", "accent": "#f97316", "text": "#431407"},
        ),
        ShopItem(
            "theme-forest",
            "theme",
            "Forest",
            "Calm greens for focused study.",
            50,
            {"background": "#ecfdf5", "accent": "#059669", "text": "#064e3b"},
        ),
        ShopItem(
            "badge-early-bird",
            "badge",
            "Early bird",
            "Up before the lecture starts.",
            20,
            {"emoji": "🐦", "color": "#f59e0b"},
        ),
        ShopItem(
            "badge-night-owl",
            "badge",
            "Night owl",
            "Codes best after midnight.",
            20,
            {"emoji": "🦉", "color": "#6366f1"},
        ),
        ShopItem(
            "badge-polyglot",
            "badge",
            "Polyglot",
            "Learns in more than one language.",
            80,
            {"emoji": "🌍", "color": "#10b981"},
        ),
        ShopItem(
            "badge-mentor",
            "badge",
            "Mentor",
            "Helps the study group along.",
            120,
            {"emoji": "🎓", "color": "#ec4899"},
        ),
        ShopItem(
            "frame-gold",
            "frame",
            "Gold frame",
            "A golden ring around your avatar.",
            100,
            {"border": "3px solid #eab308"},
        ),
        ShopItem(
            "frame-neon",
            "frame",
            "Neon frame",
            "A glowing ring around your avatar.",
            75,
            {"border": "3px solid #22d3ee", "shadow": "0 0 8px #22d3ee"},
        ),
    )
}


class AlreadyOwned(Conflict):
    pass


@dataclass(frozen=True, slots=True)
class Appearance:
    theme: ShopItem | None = None
    badge: ShopItem | None = None
    frame: ShopItem | None = None


class Shop:
    def __init__(self, db: Database, ledger: Ledger, clock: Clock) -> None:
        self._db = db
        self._ledger = ledger
        self._clock = clock

    def items(self) -> list[ShopItem]:
        return list(ITEMS.values())

    async def owned(self, user_id: int) -> set[str]:
        async with self._db.sessions() as s:
            return set(
                await s.scalars(
                    select(ShopOwnership.item_id).where(ShopOwnership.user_id == user_id)
                )
            )

    async def buy(self, user: User, item_id: str) -> tuple[ShopItem, int]:
        """Pay for an item and own it, in one transaction; returns it and the new balance.

        Raises:
            NotFound: no such item.
            AlreadyOwned: 409.
            InsufficientFunds: 402 with the balance and the price; nothing happens.
        """
        item = ITEMS.get(item_id)
        if item is None:
            raise NotFound("No shop item with this id.")
        try:
            async with self._db.transaction() as s:
                if await s.get(ShopOwnership, (user.id, item.id)) is not None:
                    raise AlreadyOwned("You already own this item.")
                wallet = await self._ledger.wallet(s, user.id)
                revenue = await self._ledger.account(s, REVENUE)
                transfer = await self._ledger.post(
                    s,
                    kind="shop",
                    postings=[Posting(wallet.id, -item.price), Posting(revenue.id, item.price)],
                    memo=f"Bought {item.name} ({item.kind})",
                    reference={"shop_item": item.id},
                )
                s.add(
                    ShopOwnership(
                        user_id=user.id,
                        item_id=item.id,
                        transfer_id=transfer.id,
                        created_at=self._clock.now(),
                    )
                )
                await s.flush()
        except IntegrityError:
            raise AlreadyOwned("You already own this item.") from None
        return item, await self._ledger.balance(user.id)

    async def appearance(self, user_id: int) -> Appearance:
        async with self._db.sessions() as s:
            row = await s.get(ProfileAppearance, user_id)
        if row is None:
            return Appearance()
        return Appearance(
            theme=ITEMS.get(row.theme or ""),
            badge=ITEMS.get(row.badge or ""),
            frame=ITEMS.get(row.frame or ""),
        )

    async def public_appearance(self, user_id: int) -> dict[str, Any]:
        """What others see of a user's profile items (the identity package's profile hook)."""
        shown = await self.appearance(user_id)
        return {
            kind: {"id": item.id, "name": item.name, "style": dict(item.style)} if item else None
            for kind, item in (
                ("theme", shown.theme),
                ("badge", shown.badge),
                ("frame", shown.frame),
            )
        }

    async def apply(self, user: User, choice: dict[Kind, str | None]) -> Appearance:
        """Show owned items on the profile, one per kind (None takes it off).

        Raises:
            ValidationFailed: an item that does not exist, is of another kind or is not owned.
        """
        owned = await self.owned(user.id)
        errors = []
        for kind, item_id in choice.items():
            if item_id is None:
                continue
            item = ITEMS.get(item_id)
            if item is None or item.kind != kind:
                errors.append(FieldError(kind, f"is not a {kind} of the shop"))
            elif item_id not in owned:
                errors.append(FieldError(kind, "buy this item before applying it"))
        if errors:
            raise ValidationFailed(errors)
        async with self._db.transaction() as s:
            row = await s.get(ProfileAppearance, user.id)
            if row is None:
                row = ProfileAppearance(user_id=user.id)
                s.add(row)
            for kind, item_id in choice.items():
                setattr(row, kind, item_id)
            row.updated_at = self._clock.now()
        return await self.appearance(user.id)
