"""The ui answers only requests naming its own Host and Origin (a real server on 127.0.0.1, raw headers).

DNS rebinding: a page on an attacker's name that resolves to 127.0.0.1 reaches the socket with the
attacker's name in Host; names that merely start with "127." are such names.
"""

from __future__ import annotations

import pytest

from tests.ui_helpers import running_server

httpx = pytest.importorskip("httpx", reason="httpx is not installed: pip install '.[test]'")
pytest.importorskip("fastapi", reason="the ui extra is not installed: pip install '.[ui]'")

TIMEOUT = httpx.Timeout(60.0)


@pytest.fixture(scope="module")
def server(tiny_backbone, tmp_path_factory):
    with running_server(tiny_backbone, tmp_path_factory.mktemp("ui-host")) as (url, session):
        yield url, session, int(url.rstrip("/").rsplit(":", 1)[1])


def _get(url: str, path: str, **headers: str) -> httpx.Response:
    return httpx.get(f"{url}{path}", headers=headers, timeout=TIMEOUT)


@pytest.mark.parametrize("host", ["127.attacker.example:{port}", "127.0.0.1.nip.io:{port}",
                                  "127.0.0.1:{other}", "localhost:{other}", "127.0.0.2:{port}",
                                  "127.0.0.1", "evil.example:{port}", "127.0.0.1:{port}.evil.example",
                                  "[::1]:{other}", "localhost.:{port}", ""])  # fmt: skip
def test_a_host_other_than_its_own_address_is_refused(server, host: str) -> None:
    url, _session, port = server
    header = host.format(port=port, other=port + 1 if port < 65535 else port - 1)
    for path in ("api/memory", "api/info", ""):
        response = _get(url, path, host=header)
        assert response.status_code == 403, (header, path, response.text)
        assert "refused" in response.json()["error"]
        assert "memory" not in response.json() or "path" not in response.text
    removed = httpx.post(f"{url}api/memory/remove", data={"name": "sky"}, headers={"host": header},
                         timeout=TIMEOUT)  # fmt: skip
    assert removed.status_code == 403


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST:{port}",
                                  "[::1]:{port}"])  # fmt: skip
def test_its_own_address_and_the_loopback_names_with_its_port_pass(server, host: str) -> None:
    url, _session, port = server
    header = host.format(port=port)
    response = _get(url, "api/memory", host=header)
    assert response.status_code == 200, response.text
    own_origin = _get(url, "api/memory", host=header, origin=f"http://{header}")
    assert own_origin.status_code == 200, own_origin.text


@pytest.mark.parametrize("origin", ["http://127.attacker.example:{port}", "http://evil.example",
                                    "http://127.0.0.1:{other}", "https://127.0.0.1:{port}", "null",
                                    "http://localhost:{port}"])  # fmt: skip
def test_an_origin_other_than_the_page_itself_is_refused(server, origin: str) -> None:
    url, session, port = server
    header = origin.format(port=port, other=port + 1 if port < 65535 else port - 1)
    before = session.memory_summary()
    read = _get(url, "api/memory", host=f"127.0.0.1:{port}", origin=header)
    assert read.status_code == 403, (header, read.text)
    undo = httpx.post(f"{url}api/undo", headers={"host": f"127.0.0.1:{port}", "origin": header},
                      timeout=TIMEOUT)  # fmt: skip
    assert undo.status_code == 403 and "refused" in undo.json()["error"]
    assert session.memory_summary() == before


def test_a_server_on_all_interfaces_takes_address_literals_but_no_other_names() -> None:
    """`--host 0.0.0.0` (warned about): any IP literal with its port can reach it, no foreign DNS name."""
    from rns.ui.host_guard import HostGuard

    guard = HostGuard("0.0.0.0", 7860)
    for host in ("192.168.1.5:7860", "127.0.0.1:7860", "localhost:7860", "[fe80::1]:7860"):
        assert guard.admits_host(host), host
    for host in ("192.168.1.5:7861", "127.attacker.example:7860", "192.168.1.5.nip.io:7860", "fe80::1:7860"):
        assert not guard.admits_host(host), host
    specific = HostGuard("192.168.1.5", 7860)
    assert specific.admits_host("192.168.1.5:7860")
    assert not specific.admits_host("10.0.0.1:7860") and not specific.admits_host("localhost:7860")
