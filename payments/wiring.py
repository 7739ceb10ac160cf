"""Builds the payment services and plugs them into a hub app."""

from __future__ import annotations

import hashlib
import hmac

from aiohttp import web

from hub.api import Api
from hub.services import Hub
from payments.handlers import PAYMENTS, PaymentServices, add_sandbox_routes, register_routes
from payments.idempotency import IdempotencyKeys
from payments.ledger import Ledger
from payments.shop import Shop
from payments.shop_handlers import register_shop_routes
from payments.topups import SandboxProvider, TopUps
from payments.wallet import Wallets


def build_payments(hub: Hub) -> PaymentServices:
    settings = hub.settings
    ledger = Ledger(hub.db, hub.clock)
    secret = (
        settings.payment_webhook_secret
        or hmac.new(
            settings.signing_key().encode(), b"cohort:payment-webhook", hashlib.sha256
        ).hexdigest()
    )
    topups = TopUps(hub.db, ledger, SandboxProvider(), hub.clock, secret.encode())
    return PaymentServices(
        ledger,
        Wallets(ledger, settings.signup_grant_coins),
        topups,
        IdempotencyKeys(hub.db, hub.clock),
        Shop(hub.db, ledger, hub.clock),
    )


def install(app: web.Application, hub: Hub, api: Api, services: PaymentServices) -> None:
    app[PAYMENTS] = services
    register_routes(api)
    register_shop_routes(api)
    add_sandbox_routes(app)
    # System accounts are created on first use, so a hub starts (and says it is not ready)
    # even while the database is down.
    hub.identity.on_registered.append(services.wallets.open)
    hub.identity.appearance_of = services.shop.public_appearance
