"""A sprite's web app opened through its local URL in Chromium: refused without sign-in,
then served (page and WebSocket) after the one-time link, also embedded in another page.

Chromium resolves ``NAME.localhost`` to loopback by itself, as the README promises.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.browser.lab import ARTIFACTS
from tests.conftest import LocalServer
from tests.sprite_apps import free_port, start_web_echo, url_client, wait_until_serving

TIMEOUT_MS = 30_000


@pytest.fixture
def web_app(server: LocalServer, http: httpx.Client, sprite: str) -> str:
    """The web echo app running as the sprite's HTTP service; the sprite's URL."""
    start_web_echo(http, sprite, free_port())
    with url_client(server.url, sprite) as client:
        assert wait_until_serving(client, headers=server.headers).status_code == 200
    return http.get(f"/v1/sprites/{sprite}").json()["url"]


def sign_in_link(http: httpx.Client, sprite: str) -> str:
    response = http.post(f"/v1/sprites/{sprite}/url/login")
    assert response.status_code == 200, response.text
    return response.json()["url"]


@pytest.fixture
def embedding_page() -> Iterator[tuple[str, dict[str, str]]]:
    """A page on 127.0.0.1 (like a notebook server) whose ``/`` embeds ``pages["src"]``."""
    pages: dict[str, str] = {}

    class Embedder(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            body = (f'<!doctype html><h1>notebook</h1><iframe id="app" src="{pages["src"]}" '
                    f'width="100%" height="300"></iframe>').encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with ThreadingHTTPServer(("127.0.0.1", 0), Embedder) as host:
        threading.Thread(target=host.serve_forever, daemon=True).start()
        yield f"http://127.0.0.1:{host.server_address[1]}/", pages
        host.shutdown()


def test_the_sprite_url_serves_its_app_in_chromium(browser: Browser, http: httpx.Client,
                                                   sprite: str, web_app: str) -> None:
    context = browser.new_context()
    page = context.new_page()
    try:
        refused = page.goto(web_app)
        assert refused is not None and refused.status == 401
        expect(page.locator("h1")).to_have_text("401 Sign-in needed")

        page.goto(sign_in_link(http, sprite))
        assert page.url == web_app
        expect(page.locator("#title")).to_have_text("Hello from the sprite")
        expect(page.locator("#echo")).to_have_text("ping from the browser", timeout=TIMEOUT_MS)
        page.screenshot(path=ARTIFACTS / "sprite-url.png")
        page.reload()
        expect(page.locator("#echo")).to_have_text("ping from the browser", timeout=TIMEOUT_MS)
    finally:
        context.close()


def test_the_sign_in_link_works_inside_an_iframe(browser: Browser, http: httpx.Client,
                                                 sprite: str, web_app: str,
                                                 embedding_page: tuple[str, dict[str, str]]
                                                 ) -> None:
    """As ``%sprite open --embed`` shows it: a notebook page embeds the sign-in link."""
    address, pages = embedding_page
    pages["src"] = sign_in_link(http, sprite)
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(address)
        app = page.frame_locator("#app")
        expect(app.locator("#title")).to_have_text("Hello from the sprite", timeout=TIMEOUT_MS)
        expect(app.locator("#echo")).to_have_text("ping from the browser", timeout=TIMEOUT_MS)
    finally:
        context.close()
