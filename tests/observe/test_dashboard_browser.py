"""The web dashboard in a real browser: headless Chromium (Debian's) driven by Playwright,
against a node with a known process tree. With CI=true a missing browser or Playwright
fails; elsewhere the tests skip. Screenshots go to the test's tmp dir, and also to
$BEAMLET_SCREENSHOTS when it is set (that is how docs/images/ was made)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

import beamlet
from beamlet import GenServer, Reply, Supervisor
from beamlet.observe import dashboard

CHROMIUM = os.environ.get("BEAMLET_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]  # fmt: skip
TIMEOUT_MS = 10_000


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI=true and {why}")
    pytest.skip(why)


def _playwright() -> Any:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _unavailable("playwright is not installed")
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        _unavailable(f"no browser at {CHROMIUM} (apt-get install chromium)")
    return async_playwright


def _shot(tmp_path: Path, name: str) -> list[Path]:
    out = [tmp_path / name]
    extra = os.environ.get("BEAMLET_SCREENSHOTS")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        out.append(Path(extra) / name)
    return out


async def _screenshot(page: Any, tmp_path: Path, name: str) -> None:
    paths = _shot(tmp_path, name)
    await page.screenshot(path=str(paths[0]), full_page=True)
    for p in paths[1:]:
        shutil.copyfile(paths[0], p)
    assert paths[0].stat().st_size > 5000  # a real rendering, not a blank page


class Account(GenServer[int]):
    async def init(self, balance: int) -> int:
        return balance

    async def handle_call(self, request: Any, from_: Any, balance: int) -> Reply[int, int]:
        return Reply(balance + request, balance + request)


async def _stuck_consumer() -> None:
    # waits for {job, N} while its mailbox fills with messages nobody matches
    await beamlet.receive(lambda m: type(m) is tuple and m[0] == "job")


async def _known_tree() -> beamlet.Pid:
    specs = [
        Account.child_spec(100, name="accounts", id="accounts"),
        Account.child_spec(0, name="ledger", id="ledger"),
    ]
    sup = await Supervisor.start_link(specs, strategy="one_for_one")
    beamlet.register("bank_sup", sup)
    c = beamlet.spawn(_stuck_consumer)
    beamlet.register("stuck_consumer", c)
    for i in range(40):
        beamlet.send(c, ("jobb", i))  # a typo: nobody matches
    for _ in range(3):
        await GenServer.call("accounts", 10)
    return c


async def _stop(pid: beamlet.Pid) -> None:
    """Stop the dashboard before the test's node goes (its server closes cleanly)."""
    beamlet.unlink(pid)
    ref = beamlet.monitor(pid)
    beamlet.exit(pid, beamlet.SHUTDOWN)
    await beamlet.receive(lambda m: isinstance(m, beamlet.Down) and m.ref == ref, timeout=5)


async def _browser(pw: Any) -> Any:
    return await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)


async def test_table_sorted_by_mailbox_and_a_stuck_process_opened(tmp_path: Path):
    async_playwright = _playwright()
    stuck = await _known_tree()
    pid, port = await dashboard.serve_dashboard(port=0, interval=0.2)
    async with async_playwright() as pw:
        browser = await _browser(pw)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 760})
            page.set_default_timeout(TIMEOUT_MS)
            await page.goto(f"http://127.0.0.1:{port}/")
            # the overview fills from the live feed
            await page.wait_for_function(
                "document.querySelector('#ov-processes') && "
                "+document.querySelector('#ov-processes').textContent >= 5"
            )
            await page.wait_for_selector("#live.on")
            await page.wait_for_function("document.querySelectorAll('.card polyline').length > 2")
            await _screenshot(page, tmp_path, "dashboard-overview.png")

            await page.click("nav a[data-view=processes]")
            await page.click("th button[data-sort=work]")
            await page.wait_for_selector("th button.sorted[data-sort=work]")
            await page.click("th button[data-sort=mailbox]")
            await page.wait_for_selector("th button.sorted[data-sort=mailbox]")
            first = page.locator("#proc-table tbody tr").first
            await first.locator("td:text-is('stuck_consumer')").wait_for()
            assert await first.locator("td.msgq").inner_text() == "40"
            waiting = await first.locator("td.waiting").inner_text()
            assert "40 queued not matching" in waiting and "'jobb'" in waiting
            queues = [int(x) for x in await page.locator("td.msgq").all_inner_texts()]
            assert queues == sorted(queues, reverse=True)
            await _screenshot(page, tmp_path, "dashboard-processes.png")

            await page.fill("#search", "ledger")
            await page.press("#search", "Enter")
            await page.wait_for_function(
                "document.querySelectorAll('#proc-table tbody tr').length === 1"
            )
            assert "ledger" in await page.locator("#proc-table tbody").inner_text()
            await page.fill("#search", "")
            await page.press("#search", "Enter")

            await first.click()
            await page.wait_for_selector("#proc-pid")
            assert await page.inner_text("#proc-pid") == repr(stuck)
            info = await page.inner_text("#proc-info")
            assert "40 queued not matching" in info and "_stuck_consumer" in info
            await _screenshot(page, tmp_path, "dashboard-stuck-process.png")

            await page.goto(f"http://127.0.0.1:{port}/#/process/{beamlet.whereis('accounts')!r}")
            await page.wait_for_selector("#proc-graph")
            assert await page.inner_text("#proc-state") == "130"
            graph = await page.text_content("#proc-graph") or ""
            assert repr(beamlet.whereis("bank_sup")) in graph

            await page.goto(f"http://127.0.0.1:{port}/#/process/%3C0.bogus%3E")
            await page.wait_for_selector("#proc-error")
            assert "bad pid" in await page.inner_text("#proc-error")
        finally:
            await browser.close()
            await _stop(pid)


async def test_kill_a_child_and_see_the_restart_arrive(tmp_path: Path):
    async_playwright = _playwright()
    await _known_tree()
    pid, port = await dashboard.serve_dashboard(port=0, interval=0.2)
    ledger = beamlet.whereis("ledger")
    async with async_playwright() as pw:
        browser = await _browser(pw)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 640})
            page.set_default_timeout(TIMEOUT_MS)
            await page.goto(f"http://127.0.0.1:{port}/#/tree")
            await page.wait_for_selector("#tree")
            assert await page.inner_text("#restarts-total") == "0"
            tree = await page.inner_text("#tree")
            assert "accounts" in tree and "ledger" in tree and "0/3 in 5s" in tree

            # open the child from the tree and kill it, behind the confirmation
            await page.click(f"#tree a:text-is('{ledger!r}')")
            await page.wait_for_selector("#proc-pid")
            assert await page.inner_text("#proc-pid") == repr(ledger)
            await page.click("#kill")
            await page.wait_for_selector("#kill-confirm:not([hidden])")
            assert beamlet.is_alive(ledger)  # not before the confirmation
            await page.click("#kill-yes")
            await page.wait_for_function(
                "document.querySelector('#kill-result').textContent.startsWith('killed')"
            )

            # the tree page redraws when the feed reports the restart
            await page.click("nav a[data-view=tree]")
            await page.wait_for_function(
                "document.querySelector('#restarts-total')?.textContent === '1'"
            )
            await page.wait_for_selector("#tree [data-budget]:text('1/3 in 5s')")
            new = beamlet.whereis("ledger")
            assert new is not None and new != ledger
            assert repr(new) in await page.inner_text("#tree")
            await _screenshot(page, tmp_path, "dashboard-restart.png")
            await page.click("nav a[data-view=overview]")
            await page.wait_for_function(
                "document.querySelector('#ov-restarts')?.textContent === '1'"
            )
        finally:
            await browser.close()
            await _stop(pid)
