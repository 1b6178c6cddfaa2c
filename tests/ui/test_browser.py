"""The chat UI in a real browser (Debian's chromium, driven by Playwright) against a started
`docqa serve` with API keys, the `test` profile models and the sample documents.

A person logs in with a key, asks, sees a streamed answer with a confidence badge and numbered
sources, opens a source (name and highlighted passage), asks a follow-up in Chinese (the history
reaches the API: the follow-up shows what was searched for), uploads a Chinese-named Markdown
file into a new collection and sees its ingest job's progress then its report, and sees readable
messages for API errors.
Chinese in the chat and in a cited passage must be drawn as glyphs, not as empty boxes (chromium
has no CJK font unless `make browser` installs Debian's fonts-noto-cjk): a screenshot check.
Screenshots land in test-artifacts/ui/, with the server's log.

Without /usr/bin/chromium the test is skipped, except under CI (env CI set), where it fails:
`make test` installs Debian's chromium first (`make browser`).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from modelstore.cache import ModelCache
from tests.conftest import REPO, TEST_MODELS_DIR

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "test-artifacts" / "ui"
EXAMPLES = REPO / "examples"
KEY = "ui-browser-test-key"
ANSWER_S = 240_000  # ms: an answer on a loaded 2-core machine
STEP_S = 30_000  # ms: anything that does not generate
UPLOAD_S = 90_000  # ms: a small file through the ingest pipeline

if not CHROMIUM.exists():
    reason = f"{CHROMIUM} is missing (install Debian's chromium: `make browser`)"
    if os.environ.get("CI"):
        pytest.fail(f"the browser test cannot run under CI: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)

from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def artifacts() -> Path:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, test_models: ModelCache, artifacts: Path
) -> Iterator[str]:
    """`docqa serve` with API keys (so the UI logs in and sends a key) and the examples."""
    port = _free_port()
    env = {
        **os.environ,
        "DOCQA_DATA_DIR": str(tmp_path_factory.mktemp("ui") / "data"),
        "DOCQA_MODELS_DIR": str(TEST_MODELS_DIR),
        "DOCQA_PROFILE": "test",
        "DOCQA_API_KEYS": f'["{KEY}"]',
        "DOCQA_ANSWER_MAX_TOKENS": "24",
        "DOCQA_LOG_LEVEL": "INFO",
        "GRADIO_TEMP_DIR": str(tmp_path_factory.mktemp("gradio")),
    }
    log = (artifacts / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "docqa", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {KEY}"}
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, "docqa serve exited; see test-artifacts/ui/server.log"
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "docqa serve never became ready"
            time.sleep(0.3)
        for path in sorted(EXAMPLES.iterdir()):
            r = httpx.post(
                f"{base}/v1/collections/docs/documents?wait=true",
                files={"file": (path.name, path.read_bytes())},
                headers=auth,
                timeout=180,
            )
            assert r.status_code == 200, r.text
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, server: str) -> Iterator[Page]:
    """A fresh browser context, logged in to the UI. Fails afterwards if the page reached off
    the machine or the browser console reported an error."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="en-US")
    page = context.new_page()
    outside: list[str] = []
    page.on(
        "request",
        lambda r: (
            outside.append(r.url)
            if urlsplit(r.url).hostname not in {"127.0.0.1", "localhost", None}
            and not r.url.startswith(("data:", "blob:"))
            else None
        ),
    )
    page.goto(f"{server}/ui/")
    login(page)  # its wrong password is a 400 in the console, on purpose
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    context.close()
    assert outside == [], f"the UI fetched from outside the machine: {outside}"
    assert errors == [], f"the browser console reported errors: {errors}"


def login(page: Page) -> None:
    expect(page.get_by_text("needs an API key")).to_be_visible(timeout=STEP_S)
    page.get_by_test_id("textbox").fill("tester")
    page.get_by_test_id("password").fill("not-the-key")
    page.get_by_role("button", name="Login").click()
    expect(page.get_by_text(re.compile("incorrect", re.I))).to_be_visible(timeout=STEP_S)
    page.get_by_test_id("textbox").fill("tester")
    page.get_by_test_id("password").fill(KEY)
    page.get_by_role("button", name="Login").click()
    expect(page.locator("#question textarea")).to_be_visible(timeout=STEP_S)


# Reverses, in place, every run of two or more CJK ideographs in an element's text; returns how
# many text nodes changed. Without a CJK font chromium draws every ideograph as the same empty
# box, so the element looks the same reversed; with one, it does not.
_REVERSE_CJK = """el => {
    const cjk = /[\\u3400-\\u9fff\\uf900-\\ufaff]{2,}/g;
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    const saved = [];
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const text = node.data.replace(cjk, run => [...run].reverse().join(''));
        if (text !== node.data) { saved.push([node, node.data]); node.data = text; }
    }
    el.__docqaRestore = () => { for (const [node, text] of saved) node.data = text; };
    return saved.length;
}"""


def assert_chinese_renders(locator: Locator, name: str) -> None:
    """The Chinese in ``locator`` is drawn as glyphs: its screenshot changes when each run of
    ideographs is reversed (boxes look alike in any order). The screenshot is kept as ``name``."""
    before = locator.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    assert locator.evaluate(_REVERSE_CJK) > 0, "no Chinese text to check"
    try:
        after = locator.screenshot()
    finally:
        locator.evaluate("el => el.__docqaRestore()")
    assert before != after, (
        "Chinese renders as empty boxes: chromium has no CJK font "
        "(`make browser` installs fonts-noto-cjk)"
    )


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def ask(page: Page, question: str) -> None:
    page.locator("#question textarea").fill(question)
    page.locator("#ask").click()


def wait_answers(page: Page, n: int) -> None:
    expect(page.locator("#chat .docqa-meta, #chat .docqa-error")).to_have_count(n, timeout=ANSWER_S)


def watch_for_streaming(page: Page) -> None:
    """Count the partial answers (text followed by the ▌ cursor) the chat shows while streaming."""
    page.evaluate(
        """() => {
            window.__partialAnswers = 0;
            const chat = document.querySelector('#chat');
            new MutationObserver(() => {
                const bot = chat.querySelectorAll("[data-testid='bot']");
                const last = bot.length ? bot[bot.length - 1].textContent : '';
                if (/\\S\\s*▌/.test(last)) window.__partialAnswers += 1;
            }).observe(chat, {subtree: true, childList: true, characterData: true});
        }"""
    )


def watch_for_upload_progress(page: Page) -> None:
    """Record each job progress text (``.docqa-report-running``) the upload report shows."""
    page.evaluate(
        """() => {
            window.__uploadStates = [];
            const report = document.querySelector('#upload-report');
            new MutationObserver(() => {
                const running = report.querySelector('.docqa-report-running');
                const text = running ? running.textContent.trim() : '';
                const seen = window.__uploadStates;
                if (text && seen[seen.length - 1] !== text) seen.push(text);
            }).observe(report, {subtree: true, childList: true, characterData: true});
        }"""
    )


def pick_collection(page: Page, name: str) -> None:
    box = page.locator("#collection input")
    box.fill(name)
    box.press("Enter")
    box.blur()
    expect(box).to_have_value(name)


def test_ask_read_the_cited_source_and_follow_up_in_chinese(page: Page) -> None:
    expect(page.locator("#collection input")).to_have_value(
        re.compile(r"^docs \(5 documents"), timeout=STEP_S
    )
    shot(page, "01-ready")

    watch_for_streaming(page)
    # SmolLM2-135M answers this one from the passage ("13 months in write-once storage"), so the
    # cited words are there to mark; on other questions it can echo the prompt's rules instead.
    ask(page, "How long are audit logs kept?")
    expect(page.locator("#chat [data-testid='user']").first).to_have_text(
        "How long are audit logs kept?", timeout=STEP_S
    )
    wait_answers(page, 1)
    first = page.locator("#chat [data-testid='bot']").last
    assert page.evaluate("window.__partialAnswers") >= 1, "the answer did not stream"
    expect(first.locator(".docqa-badge")).to_contain_text(re.compile(r"confidence \d+%"))
    expect(first.locator(".docqa-error")).to_have_count(0)
    sources = page.locator("#sources label")
    expect(sources.first).to_be_visible(timeout=STEP_S)
    expect(sources.first).to_contain_text(re.compile(r"^\s*\[\d+\] "))
    first_sources = [t.strip() for t in sources.all_inner_texts()]
    shot(page, "02-answer")

    sources.first.click()
    panel = page.locator("#source-panel")
    names = {p.name for p in EXAMPLES.iterdir()}
    expect(panel.locator(".docqa-source-name")).to_have_text(re.compile("|".join(names)))
    expect(panel.locator(".docqa-passage")).not_to_be_empty()
    expect(panel.locator(".docqa-passage mark").first).to_be_visible()
    shot(page, "03-source")

    # A follow-up, in Chinese: the UI sends the history, so the API searched for a standalone
    # question (the model's rewrite, or the fallback that names the first question), not the
    # bare follow-up, and the answer says what it searched for.
    ask(page, "那么谁可以读取这些日志？")
    wait_answers(page, 2)
    follow_up = page.locator("#chat [data-testid='bot']").last
    expect(page.locator("#chat [data-testid='user']").last).to_have_text("那么谁可以读取这些日志？")
    expect(follow_up.locator(".docqa-query")).to_contain_text(re.compile(r"Searched for: \S"))
    expect(follow_up.locator(".docqa-badge")).to_be_visible()
    shot(page, "04-follow-up")
    assert_chinese_renders(page.locator("#chat [data-testid='user']").last, "04-chinese-question")

    # Clicking the first answer lists its sources again.
    page.locator("#chat [data-testid='bot']").first.click()
    expect(page.locator("#sources label")).to_have_text(first_sources, timeout=STEP_S)
    assert "Traceback" not in page.content()


def test_upload_a_chinese_named_file_then_ask_it_and_see_readable_errors(
    page: Page, server: str
) -> None:
    expect(page.locator("#collection input")).to_have_value(
        re.compile(r"^docs \(5 documents"), timeout=STEP_S
    )
    pick_collection(page, "oncall")
    handbook = (
        "# 值班手册\n\n值班表每周一上午十点交接。交接时主值班人要检查告警面板。\n\n"
        "The pager handover happens every Monday at 10:00.\n"
    ).encode()
    watch_for_upload_progress(page)
    upload = page.locator("#upload input[type=file]")
    upload.set_input_files(
        files=[{"name": "值班手册.md", "mimeType": "text/markdown", "buffer": handbook}]
    )
    report = page.locator("#upload-report .docqa-report-ok")
    expect(report).to_contain_text("值班手册.md added to oncall", timeout=UPLOAD_S)
    expect(report).to_contain_text("chunks added")
    # The upload is an ingest job: the report showed its state (queued, parsing, embedding n/m
    # chunks...) while the UI polled it, before the final report.
    states = page.evaluate("window.__uploadStates")
    assert states, "the upload report never showed the job's progress"
    assert all(re.match(r"⏳ 值班手册\.md: [a-z]", s) for s in states), states
    expect(page.locator("#collection input")).to_have_value(re.compile(r"^oncall \(1 documents"))
    shot(page, "05-uploaded")
    listed = httpx.get(
        f"{server}/v1/collections/oncall/documents",
        headers={"Authorization": f"Bearer {KEY}"},
    ).json()
    assert [d["source"] for d in listed["documents"]] == ["值班手册.md"]

    ask(page, "When does the pager handover happen?")
    wait_answers(page, 1)
    sources = page.locator("#sources label")
    expect(sources.first).to_contain_text("值班手册", timeout=STEP_S)
    sources.first.click()
    panel = page.locator("#source-panel")
    expect(panel.locator(".docqa-source-name")).to_have_text("值班手册.md")
    expect(panel.locator(".docqa-passage")).to_contain_text("值班表每周一上午十点交接")
    expect(panel.locator(".docqa-passage mark").first).to_contain_text("handover")
    shot(page, "06-chinese-source")
    assert_chinese_renders(panel.locator(".docqa-passage"), "06-chinese-passage")

    # API errors become readable messages: a refused file type (415), an unknown collection (404).
    upload.set_input_files(
        files=[{"name": "tool.exe", "mimeType": "application/octet-stream", "buffer": b"MZ"}]
    )
    refused = page.locator("#upload-report .docqa-error")
    expect(refused).to_contain_text("File type not accepted: file type .exe", timeout=STEP_S)
    pick_collection(page, "absent")
    ask(page, "How often do API keys rotate?")
    wait_answers(page, 2)
    error = page.locator("#chat [data-testid='bot']").last.locator(".docqa-error")
    expect(error).to_contain_text("Not found: collection 'absent' does not exist")
    shot(page, "07-errors")
    assert "Traceback" not in page.content()
