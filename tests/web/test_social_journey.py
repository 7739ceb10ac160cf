"""The social layer in a real browser, two people at once: they chat in a community, become
friends and exchange direct messages; one goes away while the other writes, comes back and
finds everything missed; the bell rings live when the other @mentions them."""

from __future__ import annotations

import re

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, Response, expect

from hub.services import HUB
from tests.web.conftest import ServerFactory, log_in_page, new_page, save_screenshots

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

# Live updates cross two browsers and the hub; a loaded machine needs more than the default 5 s.
LIVE_MS = 15_000

ANA = ("ana@example.com", "ana learns python 2026", "Ana Alvarez")
BEN = ("ben@example.com", "ben reads the docs 2026", "Ben Brown")


@pytest.fixture
async def server(make_server: ServerFactory) -> TestServer:
    return await make_server()


def is_read(response: Response) -> bool:
    """A read-marker POST (`/api/channels/{channel}/read`)."""
    return response.url.endswith("/read") and response.request.method == "POST"


async def send(page: Page, text: str, shown: str | None = None) -> None:
    """Send a message and wait until it is acknowledged and shown as stored (not as a
    "sending…" copy); `shown` is how it reads once rendered, when markdown changes it."""
    await page.get_by_test_id("chat-input").fill(text)
    await page.get_by_test_id("chat-send").click()
    await expect(page.get_by_test_id("chat-pending")).to_have_count(0)
    stored = page.get_by_test_id("chat-message").filter(has_text=shown or text)
    await expect(stored).to_have_count(1)


async def sequence_numbers(page: Page) -> list[int]:
    return await page.get_by_test_id("chat-message").evaluate_all(  # type: ignore[no-any-return]
        "items => items.map(item => Number(item.dataset.seq))"
    )


async def test_community_chat_friends_dms_offline_and_the_bell(
    server: TestServer, browser: Browser, request: pytest.FixtureRequest
) -> None:
    base = str(server.make_url("/")).rstrip("/")
    identity = server.app[HUB].identity
    ana_user = await identity.ensure_account(*ANA, admin=False, teacher=False)
    ben_user = await identity.ensure_account(*BEN, admin=False, teacher=False)
    ana = await new_page(browser)
    ben = await new_page(browser)
    pages = {"ana": ana, "ben": ben}
    try:
        await log_in_page(ana, base, ANA[0], ANA[1])
        await log_in_page(ben, base, BEN[0], BEN[1])

        # Ana founds a community; Ben finds it in the directory and joins (and earns coins).
        await ana.get_by_test_id("communities-link").click()
        await ana.get_by_test_id("community-create").locator("summary").click()
        await ana.get_by_test_id("community-name").fill("Python learners")
        await ana.get_by_test_id("community-slug").fill("python")
        await ana.get_by_test_id("community-skills").fill("python, data")
        await ana.get_by_test_id("community-create-submit").click()
        await expect(ana).to_have_url(f"{base}/communities/python")
        await expect(ana.get_by_test_id("chat-input")).to_be_visible()

        await ben.get_by_test_id("communities-link").click()
        await ben.get_by_test_id("community-search").fill("pyth")
        await (
            ben.get_by_test_id("community-card")
            .filter(has_text="Python learners")
            .locator("a")
            .click()
        )
        await ben.get_by_test_id("community-join").click()
        await expect(ben.get_by_text("You earned 10 coins")).to_be_visible()
        await expect(ben.get_by_test_id("nav-balance")).to_have_text(re.compile(r"\d"))
        await expect(ben.get_by_test_id("chat-input")).to_be_visible()

        # Ana sees Ben arrive: a live notification and an online dot in the member list.
        await expect(ana.get_by_test_id("bell-count")).to_have_text("1")
        ben_row = ana.locator(f'[data-testid="member"][data-user="{ben_user.id}"]')
        await expect(ben_row.get_by_test_id("online-dot")).to_have_attribute("data-online", "true")

        # They chat; markdown is rendered, raw HTML is not.
        await send(ana, "Welcome **Ben**! <img src=x onerror=alert(1)>", shown="Welcome Ben!")
        first = ben.get_by_test_id("chat-message").filter(has_text="Welcome")
        await expect(first.locator("strong")).to_have_text("Ben")
        await expect(first.locator("img")).to_have_count(0)
        await expect(ana.get_by_test_id("chat-typing")).to_have_text("")
        await ben.get_by_test_id("chat-input").press_sequentially("Thanks", delay=20)
        await expect(ana.get_by_test_id("chat-typing")).to_have_text("Ben Brown is typing…")
        await ben.get_by_test_id("chat-input").press("Enter")
        await expect(ana.get_by_test_id("chat-message").filter(has_text="Thanks")).to_have_count(1)
        await expect(ana.get_by_test_id("chat-typing")).to_have_text("")

        # Ben asks Ana to be friends; her bell rings and the request shows up; she accepts.
        await ben.goto(f"{base}/friends")
        await ben.get_by_test_id("friend-add-id").fill(str(ana_user.id))
        await ben.get_by_test_id("friend-add").click()
        await expect(ben.get_by_test_id("friend-pending")).to_have_count(1)
        await expect(ana.get_by_test_id("bell-count")).to_have_text("2")
        await ana.goto(f"{base}/friends")
        await ana.get_by_test_id("friend-request").get_by_test_id("friend-accept").click()
        await expect(ana.get_by_test_id("friend")).to_have_count(1)
        # Ben's list follows live (the acceptance is a notification on his channel).
        friend = ben.locator(f'[data-testid="friend"][data-user="{ana_user.id}"]')
        await expect(friend).to_be_visible()
        await expect(friend.get_by_test_id("online-dot")).to_have_attribute("data-online", "true")

        # Direct messages.
        await friend.get_by_test_id("friend-message").click()
        await expect(ben).to_have_url(f"{base}/messages/{ana_user.id}")
        await send(ben, "Hi Ana, got a minute?")
        await ana.goto(f"{base}/messages/{ben_user.id}")
        await expect(ana.get_by_test_id("chat-message")).to_have_count(1)
        async with ben.expect_response(is_read):
            await send(ana, "Sure, ask away")
        await expect(ben.get_by_test_id("chat-message")).to_have_count(2)

        # Ben goes away; Ana keeps writing, in the DM and in the community.
        ben_context = ben.context
        await ben.close()
        for n in range(3):
            await send(ana, f"while you were away {n}")
        await ana.goto(f"{base}/communities/python")
        await send(ana, "community news while Ben is away")

        # Ben comes back: the navigation counts what he missed, and the pages show it all.
        ben = await ben_context.new_page()
        ben.set_default_timeout(20_000)
        pages["ben"] = ben
        await ben.goto(f"{base}/")
        await expect(ben.get_by_test_id("messages-link-unread")).to_contain_text("3")
        await expect(ben.get_by_test_id("communities-link-unread")).to_contain_text("1")
        await ben.get_by_test_id("messages-link").click()
        await ben.locator(f'[data-testid="dm-thread"][data-user="{ana_user.id}"]').click()
        await expect(ben.get_by_test_id("chat-message")).to_have_count(5)
        await expect(ben.get_by_test_id("chat-message").last).to_contain_text(
            "while you were away 2"
        )
        seqs = await sequence_numbers(ben)
        assert seqs == sorted(set(seqs))
        # Reading them clears the badge.
        await expect(ben.get_by_test_id("messages-link-unread")).to_have_count(0)

        await ben.goto(f"{base}/communities/python")
        await expect(
            ben.get_by_test_id("chat-message").filter(has_text="community news while Ben is away")
        ).to_have_count(1)
        assert await sequence_numbers(ben) == await sequence_numbers(ana)

        # The hub cuts Ben's socket off as too slow (4008); Ana writes on. His tab reconnects
        # with a new ticket and resubscribes with `since`: everything arrives, once, in order.
        gateway = server.app[HUB].gateway
        cut = [c for c in gateway.connections if c.user.id == ben_user.id]
        assert cut
        for connection in cut:
            connection.kill(4008, "too slow: resubscribe with since")
        await send(ana, "sent while Ben reconnects 1")
        await send(ana, "sent while Ben reconnects 2")
        await expect(
            ben.get_by_test_id("chat-message").filter(has_text="sent while Ben reconnects 2")
        ).to_have_count(1)
        await expect(ben.get_by_test_id("chat-offline")).to_have_count(0)
        assert await sequence_numbers(ben) == await sequence_numbers(ana)
        fresh = [c for c in gateway.connections if c.user.id == ben_user.id]
        assert fresh
        assert not set(fresh) & set(cut)

        # Ana @mentions Ben, picking him from the list: his bell updates without a reload.
        await expect(ben.get_by_test_id("bell-count")).to_have_text("1")  # Ana accepted
        await ana.get_by_test_id("chat-input").press_sequentially("Hey @Be", delay=20)
        option = ana.get_by_test_id("chat-mention-option").filter(has_text="Ben Brown")
        await expect(option).to_have_count(1)
        await ana.get_by_test_id("chat-input").press("Enter")  # picks the highlighted person
        await expect(ana.get_by_test_id("chat-input")).to_have_value("Hey @Ben Brown ")
        await ana.get_by_test_id("chat-input").press_sequentially("look at this", delay=5)
        await ana.get_by_test_id("chat-input").press("Enter")
        await expect(ben.get_by_test_id("bell-count")).to_have_text("2")
        mention = ben.get_by_test_id("chat-message").filter(has_text="look at this")
        await expect(mention).to_have_class(re.compile("mentions-me"))

        await ben.get_by_test_id("bell").click()
        item = ben.get_by_test_id("notification-item").first
        await expect(item).to_contain_text("Ana Alvarez mentioned you in Python learners")
        await item.click()
        await expect(ben.get_by_test_id("bell-count")).to_have_text("1")
        await expect(ben).to_have_url(f"{base}/communities/python")
    except Exception:
        await save_screenshots(request.node.name, pages)
        raise
