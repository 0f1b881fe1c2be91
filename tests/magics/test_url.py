"""%sprite url, %sprite open and the services URL column, through a real shell and server,
with real apps started as services in the sprite."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from IPython.utils.capture import capture_output

from sprites_jupyter.magic_commands.url import Link, SpriteUrl
from tests.sprite_apps import (
    free_port,
    start_service,
    start_web_echo,
    url_client,
    url_host,
    wait_until_serving,
)


@pytest.fixture
def web(server, http, current) -> Iterator[httpx.Client]:
    """The web echo app as the current sprite's HTTP service; a client for its URL."""
    start_web_echo(http, current, free_port())
    with url_client(server.url, current) as client:
        assert wait_until_serving(client, headers=server.headers).status_code == 200
        yield client


def follow(client: httpx.Client, link: str) -> httpx.Response:
    parts = urlsplit(link)
    return client.get(f"{parts.path}?{parts.query}" if parts.query else parts.path)


def test_url_shows_the_local_url_and_who_may_open_it(ip, server, http, current):
    shown = ip.ok("%sprite url")
    assert isinstance(shown, SpriteUrl)
    assert shown.url == f"http://{url_host(server.url, current)}/" and shown.auth == "sprite"
    assert "needs the token" in repr(shown) and repr(shown).startswith(shown.url)
    assert f'<a href="{shown.url}" target="_blank">' in shown._repr_html_()

    assert ip.ok("%sprite url --public").auth == "public"
    assert http.get(f"/v1/sprites/{current}").json()["url_settings"]["auth"] == "public"
    assert "anything on this machine" in repr(ip.ok("%sprite url"))
    assert ip.ok("%sprite url --private").auth == "sprite"
    assert http.get(f"/v1/sprites/{current}").json()["url_settings"]["auth"] == "sprite"
    assert "not allowed with argument" in ip.fails("%sprite url --public --private")
    assert "not found" in ip.fails("%sprite url -s no-such-sprite")


def test_open_prints_a_one_time_sign_in_link_to_the_app(ip, current, web):
    with capture_output() as captured:
        ip.ok("%sprite open")
    assert "one-time link" in captured.stdout
    (output,) = captured.outputs
    link = output.data["text/plain"].split(": ", 1)[1]
    assert urlsplit(link).hostname == f"{current}.localhost"
    assert f'href="{link}"' in output.data["text/html"]
    assert web.get("/").status_code == 401
    signed = follow(web, link)
    assert signed.status_code == 303
    page = web.get("/")
    assert page.status_code == 200 and "Hello from the sprite" in page.text
    assert follow(web, link).status_code == 403  # one time only


def test_open_a_public_url_links_to_it_directly(ip, server, current, web):
    ip.ok("%sprite url --public")
    with capture_output() as captured:
        ip.ok("%sprite open web")
    assert "public" in captured.stdout
    assert captured.outputs[0].data["text/plain"].endswith(
        f": http://{url_host(server.url, current)}/")
    assert web.get("/").status_code == 200


def test_open_embed_shows_the_app_without_saving_a_sign_in_link(ip, current, web):
    """A private local URL is embedded through a forward: a one-time sign-in link would
    be saved in the notebook, dead; the page the iframe shows is the app itself."""
    with capture_output() as captured:
        ip.ok("%sprite open --embed 300")
    assert "without a one-time sign-in link" in captured.stdout
    (output,) = captured.outputs
    frame = output.data["text/html"]
    assert "<iframe" in frame and 'height="300"' in frame and 'width="100%"' in frame
    src = frame.split('src="', 1)[1].split('"', 1)[0]
    assert "ticket" not in src and "sign" not in src
    local = ip.ok("%sprite forwards")
    assert src == f"http://localhost:{local.index[0]}/"
    with httpx.Client(timeout=30) as plain:
        page = wait_until_serving(plain, f"http://127.0.0.1:{local.index[0]}/")
    assert page.status_code == 200 and "Hello from the sprite" in page.text
    assert output.data["text/plain"] == f"{current} port {web_port_of(ip)}: {src} (shown " \
                                        "embedded in a notebook)"
    with capture_output() as captured:
        ip.ok("%sprite open --embed")
    assert 'height="480"' in captured.outputs[0].data["text/html"]
    assert len(ip.ok("%sprite forwards")) == 1, "the same forward again"
    ip.ok("%sprite forward stop --all")


def web_port_of(ip) -> int:
    return next(s.http_port for s in ip.magics.context.sprite().list_services() if s.http_port)


def test_forward_returns_the_local_port_and_reuses_the_forward_open_made(ip, http, current,
                                                                        web, capsys):
    port = free_port()
    start_service(http, current, "files", ["python3", "-m", "http.server", str(port)])
    with capture_output():
        ip.ok(f"%sprite open {port}")
    opened = ip.ok("%sprite forwards").index.tolist()
    capsys.readouterr()
    assert ip.ok(f"%sprite forward {port}") == opened[0]
    assert f"Already forwarding localhost:{opened[0]} to port {port}" in capsys.readouterr().out
    assert ip.ok("%sprite forwards").index.tolist() == opened
    other = free_port()
    assert ip.ok(f"%sprite forward {port} --local {other}") == other
    assert sorted(ip.ok("%sprite forwards").index) == sorted([opened[0], other])
    ip.ok("%sprite forward stop --all")


def test_open_another_port_goes_through_a_forward(ip, http, current, web):
    port = free_port()
    start_service(http, current, "files", ["python3", "-m", "http.server", str(port)])
    with capture_output() as captured:
        ip.ok(f"%sprite open {port}")
    assert f"Port {port} is not the one the sprite URL serves" in captured.stdout
    link = captured.outputs[0].data["text/plain"].split(": ", 1)[1]
    local = ip.ok("%sprite forwards")
    assert local["remote"].tolist() == [port]
    assert link == f"http://localhost:{local.index[0]}/"
    with httpx.Client(timeout=30) as plain:
        listing = wait_until_serving(plain, f"http://127.0.0.1:{local.index[0]}/")
    assert listing.status_code == 200 and "web_echo_app.py" in listing.text
    with capture_output() as captured:
        ip.ok(f"%sprite open {port}")  # the same forward again
    assert len(ip.ok("%sprite forwards")) == 1
    with capture_output() as captured:
        ip.ok("%sprite open --forward")
    assert "Asked to forward" in captured.stdout
    assert sorted(ip.ok("%sprite forwards")["remote"]) == sorted([port, web_port(http, current)])
    ip.ok("%sprite forward stop --all")


def web_port(http: httpx.Client, sprite: str) -> int:
    return http.get(f"/v1/sprites/{sprite}/services/web").json()["http_port"]


def test_open_under_jupyterhub_forwards_and_says_so(ip, current, web, monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ada/")
    with capture_output() as captured:
        ip.ok("%sprite open")
    assert "cannot reach the sprite URL from JupyterHub" in captured.stdout
    assert len(ip.ok("%sprite forwards")) == 1
    ip.ok("%sprite forward stop --all")


def test_open_explains_bad_targets(ip, http, current):
    start_service(http, current, "worker", ["sleep", "3600"])
    assert "has no http_port" in ip.fails("%sprite open worker")
    message = ip.fails("%sprite open nope")
    assert "no port or service 'nope'" in message and "worker" in message
    assert "not from 1 to 65535" in ip.fails("%sprite open 70000")
    assert "argument --embed: invalid int value" in ip.fails("%sprite open --embed tall")


def test_links_are_plain_text_outside_a_notebook():
    link = Link("http://demo.localhost:1/", "demo port 8080")
    assert repr(link) == "demo port 8080: http://demo.localhost:1/"


def test_services_show_the_url_of_the_http_service(ip, http, server, current, web):
    start_service(http, current, "worker", ["sleep", "3600"])
    frame = ip.ok("%sprite services")
    assert frame.loc["web", "url"] == f"http://{url_host(server.url, current)}/"
    assert frame.loc["worker", "url"] == ""


def test_completion_knows_the_new_subcommands_and_services(ip, current, web):
    from IPython.core.completer import provisionalcompleter

    def complete(line: str) -> list[str]:
        with provisionalcompleter():
            return [c.text for c in ip.shell.Completer.completions(line, len(line))]

    assert {"forward", "forwards"} <= set(complete("%sprite forw"))
    assert "web" in complete("%sprite open w")
    assert "--embed" in complete("%sprite open --emb")
