"""The catalog's services, as the HTTP edge finds them on the app."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from catalog.communities import Communities
from catalog.courses import CourseManager
from catalog.covers import CourseCovers
from catalog.friends import Friends
from catalog.groups import StudyGroups
from catalog.learning import Learning
from catalog.purchases import Purchases
from catalog.reviews import Reviews
from catalog.search import CourseSearch
from catalog.stats import CourseStatsReader
from payments.idempotency import IdempotencyKeys
from payments.ledger import Ledger


@dataclass(frozen=True, slots=True)
class CatalogServices:
    courses: CourseManager
    purchases: Purchases
    keys: IdempotencyKeys
    reviews: Reviews
    search: CourseSearch
    learning: Learning
    stats: CourseStatsReader
    covers: CourseCovers
    ledger: Ledger
    communities: Communities
    groups: StudyGroups
    friends: Friends


CATALOG = web.AppKey("catalog", CatalogServices)
