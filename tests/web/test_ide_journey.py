"""The IDE in a real browser, two people at once: the owner creates a project and invites a
friend as an editor; both open it and type into main.py at the same moment; both end with the
same text, which is also what the hub's document holds; one runs it and both see the output.
Also: the embeddable editor at /embed/projects/{id}, alone and inside a same-origin iframe."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, expect
from pycrdt import Doc

from hub.services import HUB
from ide.services import IDE
from tests.ide.conftest import doc_until, file_text
from tests.web.conftest import ServerFactory, log_in_page, new_page, save_screenshots

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

# Edits and runs cross two browsers, the hub and a kernel: a loaded machine needs time.
LIVE_MS = 20_000
# A kernel's first start (Jupyter server, sandbox) is slower than anything else here.
RUN_MS = 90_000

ANA = ("ana@example.com", "ana learns python 2026", "Ana Alvarez")
BEN = ("ben@example.com", "ben reads the docs 2026", "Ben Brown")


@pytest.fixture
async def server(make_server: ServerFactory) -> TestServer:
    return await make_server()


async def create_project(page: Page, base: str, name: str) -> int:
    """Create a project through /projects; returns its id (the IDE page opens)."""
    await page.goto(f"{base}/projects")
    await page.get_by_test_id("project-name").fill(name)
    await page.get_by_test_id("project-create-submit").click()
    await page.wait_for_url(re.compile(r"/projects/\d+$"))
    found = re.search(r"/projects/(\d+)$", page.url)
    assert found is not None
    return int(found.group(1))


async def wait_live(page: Page) -> None:
    """The document is synced and main.py is open in the editor."""
    await expect(page.get_by_test_id("ide-status")).to_have_attribute("data-synced", "true")
    await expect(page.locator("code-editor .cm-content")).to_be_visible()


async def editor_text(page: Page) -> str:
    return await page.locator("code-editor").evaluate("el => el.text")  # type: ignore[no-any-return]


async def shown_text(page: Page) -> str:
    """The text on screen: the editor's lines without the remote cursors drawn among them."""
    return await page.locator("code-editor").evaluate(  # type: ignore[no-any-return]
        r"""el => [...el.shadowRoot.querySelectorAll('.cm-line')].map(line => {
            const copy = line.cloneNode(true);
            copy.querySelectorAll('.cm-ySelectionCaret, .cm-widgetBuffer').forEach(n => n.remove());
            return copy.textContent.replaceAll('\u2060', '');
        }).join('\n')"""
    )


async def wait_for_text(page: Page, expected: str) -> None:
    await page.wait_for_function(
        "expected => document.querySelector('cohort-app')?.shadowRoot"
        "?.querySelector('project-page')?.shadowRoot"
        "?.querySelector('code-editor')?.text === expected",
        arg=expected,
        timeout=LIVE_MS,
    )


def hub_doc(server: TestServer, doc: str) -> Doc[Any]:
    """The hub's live copy of a document (loaded while a page has it open)."""
    return server.app[IDE].documents.rooms[doc].doc


async def wait_hub_text(server: TestServer, doc: str, path: str, expected: str | None) -> None:
    """Wait until the hub's document holds ``expected`` at ``path`` (None: no such file)."""
    live = hub_doc(server, doc)
    await doc_until(live, lambda: file_text(live, path) == expected, within=LIVE_MS / 1000)


async def signed_in(
    server: TestServer, browser: Browser, who: tuple[str, str, str]
) -> tuple[int, Page]:
    """``who``'s (email, password, name) user id and a page of theirs, signed in (the account
    made if need be)."""
    base = str(server.make_url("/")).rstrip("/")
    user = await server.app[HUB].identity.ensure_account(*who, admin=False, teacher=False)
    page = await new_page(browser)
    await log_in_page(page, base, who[0], who[1])
    return user.id, page


async def ana_and_ben(server: TestServer, browser: Browser) -> tuple[int, Page, Page]:
    """Ben's user id, and a page for each of Ana and Ben, signed in."""
    _, ana = await signed_in(server, browser, ANA)
    ben_id, ben = await signed_in(server, browser, BEN)
    return ben_id, ana, ben


async def test_two_people_edit_at_once_and_share_a_run(
    server: TestServer, browser: Browser, request: pytest.FixtureRequest
) -> None:
    base = str(server.make_url("/")).rstrip("/")
    ben_id, ana, ben = await ana_and_ben(server, browser)
    pages = {"ana": ana, "ben": ben}
    try:
        # Ana starts a project (it opens with an empty main.py) and invites Ben as an editor.
        project_id = await create_project(ana, base, "Snake")
        doc = f"project-{project_id}"
        await wait_live(ana)
        await expect(ana.get_by_test_id("file")).to_have_count(1)
        await expect(ana.get_by_test_id("file")).to_have_attribute("data-path", "main.py")
        await expect(ana.get_by_test_id("ide-no-chat")).to_be_visible()
        await ana.get_by_test_id("project-invite-user").fill(str(ben_id))
        await ana.get_by_test_id("project-invite-role").select_option("editor")
        async with ana.expect_response(
            lambda r: (
                r.url.endswith(f"/api/projects/{project_id}/members") and r.request.method == "POST"
            )
        ) as invited:
            await ana.get_by_test_id("project-invite-submit").click()
        assert (await invited.value).status == 200

        # Ben finds it among his projects and opens it; each sees the other in the presence list.
        await ben.get_by_test_id("projects-link").click()
        await ben.get_by_test_id("project-link").filter(has_text="Snake").click()
        await wait_live(ben)
        for page in (ana, ben):
            await expect(page.get_by_test_id("peer")).to_have_count(2)
            await expect(page.get_by_test_id("presence")).to_contain_text(ANA[2])
            await expect(page.get_by_test_id("presence")).to_contain_text(BEN[2])

        # A first line, so each has a place of their own to type into.
        await ana.locator("code-editor .cm-content").click()
        await ana.keyboard.type("# shared\n")
        await wait_for_text(ben, "# shared\n")

        # Both type at the same moment: Ana at the top, Ben at the bottom.
        await ana.keyboard.press("Control+Home")
        await ben.locator("code-editor .cm-content").click()
        await ben.keyboard.press("Control+End")
        await asyncio.gather(
            ana.keyboard.type('a = "ana"\n', delay=25),
            ben.keyboard.type('b = "ben"\n', delay=25),
        )
        expected = 'a = "ana"\n# shared\nb = "ben"\n'
        await wait_for_text(ana, expected)
        await wait_for_text(ben, expected)
        assert await editor_text(ana) == await editor_text(ben) == expected
        # What the page shows is what the editor holds.
        assert await shown_text(ben) == expected
        await wait_hub_text(server, doc, "main.py", expected)

        # Each sees the other's cursor, named.
        await expect(ana.locator("code-editor .cm-ySelectionInfo")).to_contain_text(BEN[2])
        await expect(ben.locator("code-editor .cm-ySelectionInfo")).to_contain_text(ANA[2])

        # Ana finishes the program; Ben runs it; both see the output, and who ran it.
        await ana.keyboard.press("Control+End")
        await ana.keyboard.type("print(a, b, sep='+')")
        final = expected + "print(a, b, sep='+')"
        await wait_for_text(ben, final)
        await wait_hub_text(server, doc, "main.py", final)
        await ben.get_by_test_id("run").click()
        for page in (ana, ben):
            run = page.get_by_test_id("run-item")
            await expect(run.get_by_test_id("run-stream")).to_contain_text(
                "ana+ben", timeout=RUN_MS
            )
            await expect(run.get_by_test_id("run-by")).to_have_text(BEN[2])
            await expect(run).to_have_attribute("data-status", "ok", timeout=RUN_MS)
        assert not await ben.get_by_test_id("run-error-message").count()

        # Ana runs just a slow line she selects, then interrupts it: both see it stop.
        await ana.locator("code-editor .cm-content").click()
        await ana.keyboard.press("Control+End")
        await ana.keyboard.type("\nimport time; time.sleep(60)")
        await ana.keyboard.press("Shift+Home")
        await ana.get_by_test_id("run-selection").click()
        slow = ana.get_by_test_id("run-item").nth(1)
        await expect(slow).to_have_attribute("data-status", "running", timeout=RUN_MS)
        await expect(ben.get_by_test_id("run-item").nth(1)).to_contain_text("ran selection")
        await ana.get_by_test_id("interrupt").click()
        for page in (ana, ben):
            await expect(page.get_by_test_id("run-item").nth(1)).to_have_attribute(
                "data-status", "interrupted"
            )
            await expect(page.get_by_test_id("run-item").nth(1)).to_contain_text(ANA[2])
        await ben.get_by_test_id("restart").click()
        await expect(ben.get_by_test_id("restart")).to_be_enabled()
        assert not await ben.get_by_test_id("run-error-message").count()
    finally:
        await save_screenshots(request.node.name, pages)
        for page in pages.values():
            await page.context.close()


async def test_files_are_added_renamed_and_deleted_for_everyone(
    server: TestServer, browser: Browser, request: pytest.FixtureRequest
) -> None:
    base = str(server.make_url("/")).rstrip("/")
    _, ana = await signed_in(server, browser, ANA)
    try:
        project_id = await create_project(ana, base, "Files")
        doc = f"project-{project_id}"
        await wait_live(ana)

        await ana.get_by_test_id("file-add").click()
        await ana.get_by_test_id("file-path").fill("lib/util.py")
        await ana.get_by_test_id("file-save").click()
        util = ana.locator('[data-testid="file"][data-path="lib/util.py"]')
        await expect(util).to_have_attribute("aria-current", "true")
        await ana.locator("code-editor .cm-content").click()
        await ana.keyboard.type("X = 4")
        await wait_hub_text(server, doc, "lib/util.py", "X = 4")

        # The hub drops the socket (1013: reconnect); the page reconnects with a fresh ticket
        # (a used one is refused) and what is typed meanwhile arrives.
        room = server.app[IDE].documents.rooms[doc]
        doc_ticket = f'{{"doc":"{doc}"}}'
        async with ana.expect_response(
            lambda r: r.url.endswith("/api/realtime/ticket") and r.request.post_data == doc_ticket
        ) as ticket:
            for connection in room.local_clients():
                connection.kill(1013, "test: reconnect")
            await ana.keyboard.type("2")
        assert (await ticket.value).ok
        await expect(ana.get_by_test_id("ide-status")).to_have_text("Live")
        await wait_hub_text(server, doc, "lib/util.py", "X = 42")

        await util.get_by_test_id("file-rename").click()
        await ana.get_by_test_id("file-path").fill("lib/helpers.py")
        await ana.get_by_test_id("file-save").click()
        await expect(ana.get_by_test_id("file")).to_have_count(2)
        await wait_hub_text(server, doc, "lib/helpers.py", "X = 42")
        assert file_text(hub_doc(server, doc), "lib/util.py") is None

        helpers = ana.locator('[data-testid="file"][data-path="lib/helpers.py"]')
        await helpers.get_by_test_id("file-delete").click()
        await ana.get_by_test_id("file-delete-confirm").click()
        await expect(ana.get_by_test_id("file")).to_have_count(1)
        await expect(ana.get_by_test_id("file")).to_have_attribute("aria-current", "true")
        await wait_hub_text(server, doc, "lib/helpers.py", None)
    finally:
        await save_screenshots(request.node.name, {"ana": ana})
        await ana.context.close()


async def test_a_viewer_reads_along_but_cannot_edit_or_run(
    server: TestServer, browser: Browser, request: pytest.FixtureRequest
) -> None:
    base = str(server.make_url("/")).rstrip("/")
    ben_id, ana, ben = await ana_and_ben(server, browser)
    pages = {"ana": ana, "ben": ben}
    try:
        project_id = await create_project(ana, base, "Read along")
        await wait_live(ana)
        await ana.get_by_test_id("project-invite-user").fill(str(ben_id))
        await ana.get_by_test_id("project-invite-role").select_option("viewer")
        await ana.get_by_test_id("project-invite-submit").click()
        await expect(ana.get_by_role("status").filter(has_text="read along")).to_be_visible()
        await ana.locator("code-editor .cm-content").click()
        await ana.keyboard.type("print('hi')")

        await ben.goto(f"{base}/projects/{project_id}")
        await wait_live(ben)
        await wait_for_text(ben, "print('hi')")
        await expect(ben.get_by_test_id("ide-readonly")).to_be_visible()
        await expect(ben.get_by_test_id("code-editor")).to_have_attribute("data-readonly", "true")
        await expect(ben.get_by_test_id("run")).to_be_disabled()
        await expect(ben.get_by_test_id("file-add")).to_have_count(0)
        await ben.locator("code-editor .cm-content").click()
        await ben.keyboard.type("oops")
        # Ana still sees Ben (his cursor), and nothing he typed.
        await expect(ana.locator("code-editor .cm-ySelectionInfo")).to_contain_text(BEN[2])
        assert await editor_text(ben) == "print('hi')"
        assert file_text(hub_doc(server, f"project-{project_id}"), "main.py") == "print('hi')"
    finally:
        await save_screenshots(request.node.name, pages)
        for page in pages.values():
            await page.context.close()


async def test_a_group_project_has_the_group_chat(
    server: TestServer, browser: Browser, request: pytest.FixtureRequest
) -> None:
    base = str(server.make_url("/")).rstrip("/")
    _, ana = await signed_in(server, browser, ANA)
    try:
        await ana.goto(f"{base}/groups")
        await ana.get_by_test_id("group-name").fill("Pythonistas")
        await ana.get_by_test_id("group-create-submit").click()
        await ana.wait_for_url(re.compile(r"/groups/\d+$"))

        await ana.goto(f"{base}/projects")
        await expect(ana.get_by_test_id("project-group").locator("option")).to_have_count(2)
        await ana.get_by_test_id("project-name").fill("Group work")
        await ana.get_by_test_id("project-group").select_option(label="Pythonistas")
        await ana.get_by_test_id("project-create-submit").click()
        await ana.wait_for_url(re.compile(r"/projects/\d+$"))
        await wait_live(ana)
        await expect(ana.get_by_test_id("ide-no-chat")).to_have_count(0)
        await ana.get_by_test_id("chat-input").fill("Who takes the tests?")
        await ana.get_by_test_id("chat-send").click()
        await expect(ana.get_by_test_id("chat-message")).to_contain_text("Who takes the tests?")
        await expect(ana.get_by_test_id("chat-pending")).to_have_count(0)
    finally:
        await save_screenshots(request.node.name, {"ana": ana})
        await ana.context.close()


async def test_embed_renders_the_editor_alone_and_in_an_iframe(
    server: TestServer, browser: Browser, request: pytest.FixtureRequest
) -> None:
    base = str(server.make_url("/")).rstrip("/")
    _, ana = await signed_in(server, browser, ANA)
    try:
        project_id = await create_project(ana, base, "Embedded")
        doc = f"project-{project_id}"

        response = await ana.goto(f"{base}/embed/projects/{project_id}")
        assert response is not None
        assert response.status == 200
        assert "x-frame-options" not in response.headers
        assert response.headers["content-security-policy"] == "frame-ancestors 'self'"
        embed = ana.locator("cohort-editor")
        await expect(embed.get_by_test_id("cohort-editor")).to_have_attribute("data-state", "ready")
        await expect(ana.locator("cohort-app")).to_have_count(0)  # no site chrome
        await expect(embed.get_by_test_id("run")).to_be_enabled()
        await embed.locator(".cm-content").click()
        await ana.keyboard.type("print('embedded')")
        await wait_hub_text(server, doc, "main.py", "print('embedded')")

        # A lesson page on the same origin frames it.
        await ana.goto(f"{base}/projects")
        await ana.evaluate(
            """src => {
                const frame = document.createElement('iframe');
                frame.src = src;
                frame.title = 'Editor';
                frame.style.width = '800px';
                frame.style.height = '500px';
                document.body.append(frame);
            }""",
            f"/embed/projects/{project_id}",
        )
        framed = ana.frame_locator("iframe[title=Editor]")
        await expect(framed.get_by_test_id("cohort-editor")).to_have_attribute(
            "data-state", "ready"
        )
        await expect(framed.locator(".cm-content")).to_have_text("print('embedded')")
    finally:
        await save_screenshots(request.node.name, {"ana": ana})
        await ana.context.close()
