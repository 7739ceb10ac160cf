"""Buying coins: coin packs, checkouts at a payment provider, and its signed webhooks.

Webhooks follow Stripe's scheme: ``Cohort-Signature: t=<unix time>,v1=<hex>`` where the hex is
HMAC-SHA256(secret, f"{t}.{raw body}"), checked in constant time against the raw bytes, at most
300 s old. Events are handled once by id, and a top-up mints its coins once however many events
say it was paid.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from sqlalchemy.exc import IntegrityError

from hub.clock import Clock
from hub.db import Database
from hub.errors import FieldError, MalformedRequest, NotFound, ValidationFailed
from payments.ledger import SETTLEMENT, Ledger, wallet_code
from payments.models import PaymentEvent, TopUp

SIGNATURE_HEADER = "Cohort-Signature"
TOLERANCE_SECONDS = 300


@dataclass(frozen=True, slots=True)
class CoinPack:
    name: str
    coins: int
    price_cents: int
    currency: str = "USD"


COIN_PACKS = {
    pack.name: pack
    for pack in (
        CoinPack("starter", 100, 99),
        CoinPack("plus", 550, 499),
        CoinPack("pro", 1200, 999),
    )
}


class PaymentProvider(Protocol):
    async def start_checkout(self, topup: TopUp) -> str:
        """Where to send the buyer to pay (a URL)."""
        ...


class SandboxProvider:
    """A provider that lives in the hub: its checkout page approves or declines, then sends the
    webhook a real provider would send."""

    async def start_checkout(self, topup: TopUp) -> str:
        return f"/sandbox/checkout/{topup.id}"


class BadSignature(MalformedRequest):
    """400: the webhook is not from our provider (or too old); nothing is done."""


def sign(secret: bytes, body: bytes, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify_signature(secret: bytes, header: str | None, body: bytes, now: float) -> None:
    """Raises BadSignature unless the header signs ``body`` with ``secret``, recently."""
    if not header:
        raise BadSignature(f"Missing {SIGNATURE_HEADER} header.")
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    timestamp, given = parts.get("t", ""), parts.get("v1", "")
    if not timestamp.isdigit() or not given:
        raise BadSignature(f"Malformed {SIGNATURE_HEADER} header.")
    if abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        raise BadSignature("The webhook signature is too old (or from the future).")
    expected = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, given):
        raise BadSignature("The webhook signature does not match.")


class TopUps:
    def __init__(
        self,
        db: Database,
        ledger: Ledger,
        provider: PaymentProvider,
        clock: Clock,
        webhook_secret: bytes,
    ) -> None:
        self._db = db
        self._ledger = ledger
        self._provider = provider
        self._clock = clock
        self.webhook_secret = webhook_secret

    async def start(self, user_id: int, pack_name: str) -> tuple[TopUp, str]:
        """Raises ValidationFailed for an unknown pack."""
        pack = COIN_PACKS.get(pack_name)
        if pack is None:
            raise ValidationFailed(
                [FieldError("pack", f"must be one of {', '.join(COIN_PACKS)}", "unknown_pack")]
            )
        topup = TopUp(
            id=uuid.uuid4().hex,
            user_id=user_id,
            pack=pack.name,
            coins=pack.coins,
            price_cents=pack.price_cents,
            currency=pack.currency,
            status="pending",
            created_at=self._clock.now(),
        )
        async with self._db.transaction() as s:
            s.add(topup)
        return topup, await self._provider.start_checkout(topup)

    async def get(self, topup_id: str, *, user_id: int | None = None) -> TopUp:
        async with self._db.sessions() as s:
            topup = await s.get(TopUp, topup_id)
        if topup is None or (user_id is not None and topup.user_id != user_id):
            raise NotFound("No top-up with this id.")
        return topup

    async def handle_webhook(self, header: str | None, body: bytes) -> str:
        """Verify and apply one provider event; returns what happened.

        Raises:
            BadSignature, MalformedRequest: and nothing changes.
        """
        verify_signature(self.webhook_secret, header, body, self._clock.now().timestamp())
        try:
            event: dict[str, Any] = orjson.loads(body)
            event_id, kind = str(event["id"]), str(event["type"])
            topup_id = str(event["data"]["topup_id"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise MalformedRequest("Not a payment event.") from None
        try:
            async with self._db.transaction() as s:
                if await s.get(PaymentEvent, event_id) is not None:
                    return "duplicate"
                s.add(PaymentEvent(id=event_id, type=kind, received_at=self._clock.now()))
        except IntegrityError:
            return "duplicate"
        topup = await self.get(topup_id)
        if kind == "checkout.completed":
            await self._ledger.transfer_once(
                kind="topup",
                source=SETTLEMENT,
                target=wallet_code(topup.user_id),
                amount=topup.coins,
                dedupe_key=f"topup:{topup.id}",
                memo=f"Bought the {topup.pack} pack",
                reference={"topup_id": topup.id, "price_cents": topup.price_cents},
            )
            await self._set_status(topup.id, "paid")
            return "paid"
        if kind == "checkout.declined":
            await self._set_status(topup.id, "declined")
            return "declined"
        return "ignored"

    async def _set_status(self, topup_id: str, status: str) -> None:
        async with self._db.transaction() as s:
            topup = await s.get(TopUp, topup_id)
            if topup is not None and topup.status == "pending":
                topup.status = status
                topup.completed_at = self._clock.now()


def event_body(kind: str, topup_id: str) -> bytes:
    return orjson.dumps(
        {"id": f"evt_{uuid.uuid4().hex}", "type": kind, "data": {"topup_id": topup_id}}
    )
