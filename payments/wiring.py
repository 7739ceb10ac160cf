"""Builds the payment services and plugs them into a hub app."""

from __future__ import annotations

from aiohttp import web

from hub.api import Api
from hub.services import Hub
from payments.handlers import PAYMENTS, PaymentServices, register_routes
from payments.ledger import Ledger
from payments.wallet import Wallets


def build_payments(hub: Hub) -> PaymentServices:
    ledger = Ledger(hub.db, hub.clock)
    return PaymentServices(ledger, Wallets(ledger, hub.settings.signup_grant_coins))


def install(app: web.Application, hub: Hub, api: Api, services: PaymentServices) -> None:
    app[PAYMENTS] = services
    register_routes(api)
    # System accounts are created on first use, so a hub starts (and says it is not ready)
    # even while the database is down.
    hub.identity.on_registered.append(services.wallets.open)
