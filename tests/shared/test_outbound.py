"""User-given provider URLs: only public http(s) hosts, unless allow-listed.

No test sends traffic anywhere but loopback, and none asks DNS: IP literals, numeric tricks,
localhost and .invalid names never reach the resolver, and the tests that need a DNS answer
replace the resolver.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from shared import outbound
from shared.errors import UnprocessableEntity
from shared.outbound import OutboundURLRefused, check_outbound_url, resolve_checked
from shared.testing import serve_app
from tests.fakes.openai_provider import create_fake_provider


@pytest.fixture
def no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    async def forbidden(host: str, port: int) -> list[str]:
        raise AssertionError(f"the resolver was asked about {host!r}")

    monkeypatch.setattr(outbound, "_getaddrinfo", forbidden)


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, list[str]]], list[str]]:
    """Replace the resolver with a fixed table; returns the list of names it was asked."""

    def install(table: dict[str, list[str]]) -> list[str]:
        asked: list[str] = []

        async def fake(host: str, port: int) -> list[str]:
            asked.append(host)
            if host not in table:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return table[host]

        monkeypatch.setattr(outbound, "_getaddrinfo", fake)
        return asked

    return install


@pytest.fixture
async def provider() -> AsyncIterator[str]:
    async with serve_app(create_fake_provider(models=["fake-gpt", "fake-gpt-mini"])) as url:
        yield url


REFUSED = [
    # the cases the issue names
    ("http://127.0.0.1", "loopback"),
    ("http://localhost", "loopback"),
    ("http://10.1.2.3", "private"),
    ("http://169.254.169.254/latest", "link-local address (the cloud metadata endpoint)"),
    ("http://[::1]", "loopback"),
    ("http://0x7f.1", "0x7f.1 (= 127.0.0.1) is a loopback"),
    ("http://2130706433", "loopback"),
    ("ftp://example.com", "scheme 'ftp'"),
    ("http://user:pw@example.com", "credentials"),
    ("https://nonexistent.invalid", "cannot be resolved"),
    # more disguises and special-purpose ranges
    ("http://[::ffff:127.0.0.1]", "loopback"),
    ("http://[::ffff:a9fe:a9fe]/latest", "metadata"),
    ("http://127.1:8080", "loopback"),
    ("http://017700000001", "loopback"),
    ("http://127.0.0.1.", "loopback"),
    ("http://LOCALHOST:8000", "loopback"),
    ("http://api.localhost", "loopback"),
    ("http://0.0.0.0", "unspecified"),
    ("http://[::]", "unspecified"),
    ("http://172.16.5.4", "private"),
    ("http://192.168.1.1", "private"),
    ("http://[fd12:3456::1]", "private"),
    ("http://[fe80::1]", "link-local"),
    ("http://100.64.0.1", "CGNAT"),
    ("http://224.0.0.1", "multicast"),
    ("http://[ff02::1]", "multicast"),
    ("http://240.0.0.1", "reserved"),
    ("http://[64:ff9b::a00:1]", "private"),  # NAT64 of 10.0.0.1
    ("http://[2002:7f00:1::]", "loopback"),  # 6to4 of 127.0.0.1
    ("http://192.0.2.1", "address"),  # documentation range: not public
    ("http://user@93.184.216.34", "credentials"),
    ("file:///etc/passwd", "scheme 'file'"),
    ("gopher://example.com", "scheme 'gopher'"),
    ("example.com/v1", "no scheme"),
    ("http://", "no host"),
    ("http:///v1", "no host"),
    ("http://exa mple.com", "whitespace"),
    ("http://example.com\n/v1", "whitespace"),
    ("http://exam\tple.com", "whitespace"),
    ("http://example.com:99999", "port"),
    ("http://example.com:0", "port 0"),
    ("http://%31%32%37.0.0.1", "not a valid host"),
    ("http://127.0.0.1\\@example.com", "credentials"),
    ("http://example.com\\.evil", "backslash"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED)
@pytest.mark.usefixtures("no_dns")
async def test_refusals_name_the_reason(url: str, reason: str) -> None:
    with pytest.raises(OutboundURLRefused) as refused:
        await check_outbound_url(url)
    assert reason in refused.value.detail
    assert refused.value.code == "url_not_allowed"
    assert refused.value.status_code == 422


def test_refusal_is_an_unprocessable_entity() -> None:
    assert issubclass(OutboundURLRefused, UnprocessableEntity)


@pytest.mark.usefixtures("no_dns")
@pytest.mark.parametrize(
    ("url", "normalized"),
    [
        ("http://93.184.216.34", "http://93.184.216.34"),
        ("HTTPS://93.184.216.34:443/v1/", "https://93.184.216.34/v1"),
        ("http://93.184.216.34:8080/v1/?a=1#frag", "http://93.184.216.34:8080/v1?a=1"),
        ("http://0x5d.0xb8.0xd8.0x22/v1", "http://93.184.216.34/v1"),
        ("https://[2606:2800:0220:0001::1946]:8443/", "https://[2606:2800:220:1::1946]:8443"),
    ],
)
async def test_public_ip_literals_pass_without_dns(url: str, normalized: str) -> None:
    assert await check_outbound_url(url) == normalized


async def test_public_names_resolve_and_normalize(dns: Callable[..., list[str]]) -> None:
    asked = dns({"api.example.com": ["93.184.216.34", "2606:2800:220:1::1946"]})
    checked = await check_outbound_url("HTTPS://API.Example.COM./v1/")
    assert checked == "https://api.example.com/v1"
    assert asked == ["api.example.com"]


async def test_unicode_hosts_are_checked_in_idna_form(dns: Callable[..., list[str]]) -> None:
    asked = dns({"xn--bcher-kva.example": ["93.184.216.34"]})
    assert await check_outbound_url("https://bücher.example/v1") == (
        "https://xn--bcher-kva.example/v1"
    )
    assert asked == ["xn--bcher-kva.example"]


@pytest.mark.parametrize(
    ("addresses", "reason"),
    [
        (["93.184.216.34", "10.0.0.7"], "resolves to 10.0.0.7, a private address"),
        (["127.0.0.1"], "resolves to 127.0.0.1, a loopback address"),
        (["::ffff:169.254.169.254"], "cloud metadata endpoint"),
        (["2606:2800:220:1::1946", "fe80::1"], "link-local"),
        (["not-an-ip"], "not an IP address"),
        ([], "cannot be resolved"),
    ],
)
async def test_any_bad_address_of_a_name_refuses_it(
    dns: Callable[..., list[str]], addresses: list[str], reason: str
) -> None:
    dns({"rebind.example": addresses})
    with pytest.raises(OutboundURLRefused) as refused:
        await check_outbound_url("https://rebind.example/v1")
    assert reason in refused.value.detail
    assert "'rebind.example'" in refused.value.detail


async def test_unresolvable_name(dns: Callable[..., list[str]]) -> None:
    dns({})
    with pytest.raises(OutboundURLRefused, match="cannot be resolved"):
        await check_outbound_url("https://no-such-host.example")


async def test_slow_resolver_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    async def slow(host: str, port: int) -> list[str]:
        await asyncio.sleep(10)
        return ["93.184.216.34"]

    monkeypatch.setattr(outbound, "_getaddrinfo", slow)
    with pytest.raises(OutboundURLRefused, match=r"within 0\.05s"):
        await check_outbound_url("https://slow.example", resolve_timeout=0.05)


async def test_allow_list_admits_the_running_fake_provider(provider: str) -> None:
    port = int(provider.rsplit(":", 1)[1])
    with pytest.raises(OutboundURLRefused, match="loopback"):
        await check_outbound_url(f"{provider}/v1")
    with pytest.raises(OutboundURLRefused, match="loopback"):  # another port is not allowed
        await check_outbound_url(f"{provider}/v1", allow=["127.0.0.1:1"])

    checked = await check_outbound_url(f"{provider}/v1/", allow=[f"127.0.0.1:{port}"])
    assert checked == f"{provider}/v1"
    assert await resolve_checked("127.0.0.1", port, [f"127.0.0.1:{port}"]) == ["127.0.0.1"]

    async with httpx.AsyncClient(base_url=checked) as client:
        answer = await client.get("/models", headers={"Authorization": "Bearer sk-test"})
        assert answer.status_code == 200
        assert [m["id"] for m in answer.json()["data"]] == ["fake-gpt", "fake-gpt-mini"]
        assert answer.json()["object"] == "list"
        refused = await client.get("/models", headers={"Authorization": "Bearer wrong"})
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.usefixtures("no_dns")
@pytest.mark.parametrize(
    ("url", "allow", "admitted"),
    [
        ("http://10.1.2.3/v1", ["10.0.0.0/8"], "http://10.1.2.3/v1"),
        ("http://10.1.2.3", [" 10.1.2.3 "], "http://10.1.2.3"),
        ("http://0x7f.1:8080", ["127.0.0.1"], "http://127.0.0.1:8080"),
        ("http://[::ffff:127.0.0.1]:8080", ["127.0.0.0/8"], "http://[::ffff:7f00:1]:8080"),
        ("http://[::1]:8080", ["[::1]:8080"], "http://[::1]:8080"),
        ("http://[::1]:8080", ["::1"], "http://[::1]:8080"),
        ("http://localhost:8080/v1", ["localhost:8080"], "http://localhost:8080/v1"),
        ("http://localhost:8080", ["LOCALHOST"], "http://localhost:8080"),
        ("http://127.0.0.1:9000", ["127.0.0.1:9000"], "http://127.0.0.1:9000"),
        ("http://127.0.0.1:9000", ["0x7f.1:9000"], "http://127.0.0.1:9000"),
        ("http://192.168.1.1", ["", "10.0.0.0/8", "192.168.0.0/16"], "http://192.168.1.1"),
    ],
)
async def test_allow_list_entries(url: str, allow: list[str], admitted: str) -> None:
    assert await check_outbound_url(url, allow=allow) == admitted


@pytest.mark.usefixtures("no_dns")
@pytest.mark.parametrize(
    ("url", "allow"),
    [
        ("http://192.168.1.1", ["10.0.0.0/8"]),
        ("http://localhost:8081", ["localhost:8080"]),
        ("http://localhost", ["localhost:8080"]),  # port 80 is not 8080
        ("http://127.0.0.2", ["127.0.0.1"]),
        ("http://[::1]:8081", ["[::1]:8080"]),
        ("http://169.254.169.254", ["127.0.0.0/8", "localhost"]),
    ],
)
async def test_allow_list_admits_nothing_else(url: str, allow: list[str]) -> None:
    with pytest.raises(OutboundURLRefused):
        await check_outbound_url(url, allow=allow)


async def test_hostname_entries_admit_what_the_name_resolves_to(
    dns: Callable[..., list[str]],
) -> None:
    dns({"llm.internal": ["10.0.0.5", "fd00::5"]})
    allow = ["llm.internal"]
    assert await check_outbound_url("http://llm.internal/v1", allow=allow) == (
        "http://llm.internal/v1"
    )
    assert await resolve_checked("llm.internal", 80, allow) == ["10.0.0.5", "fd00::5"]
    with pytest.raises(OutboundURLRefused, match=r"resolves to 10\.0\.0\.5, a private address"):
        await resolve_checked("llm.internal", 80)


async def test_allow_list_still_requires_http_and_no_credentials() -> None:
    for url in ("ftp://127.0.0.1", "http://user:pw@127.0.0.1"):
        with pytest.raises(OutboundURLRefused):
            await check_outbound_url(url, allow=["127.0.0.0/8"])


@pytest.mark.parametrize(
    "entry", ["10.0.0.0/33", "localhost:http", "localhost:0", "[::1", "[::1]x", "bad host!"]
)
async def test_malformed_allow_entries_are_configuration_errors(entry: str) -> None:
    with pytest.raises(ValueError, match="allow-list entry"):
        await check_outbound_url("http://93.184.216.34", allow=[entry])


async def test_allow_must_be_a_list_not_a_string() -> None:
    with pytest.raises(TypeError):
        await check_outbound_url("http://93.184.216.34", allow="127.0.0.1")


@pytest.mark.usefixtures("no_dns")
async def test_resolve_checked_gives_addresses_to_pin() -> None:
    assert await resolve_checked("93.184.216.34", 443) == ["93.184.216.34"]
    assert await resolve_checked("[2606:2800:220:1::1946]", 443) == ["2606:2800:220:1::1946"]
    assert await resolve_checked("localhost", 8080, ["localhost"]) == ["127.0.0.1", "::1"]
    with pytest.raises(OutboundURLRefused, match="loopback"):
        await resolve_checked("0x7f.1", 80)
    with pytest.raises(OutboundURLRefused, match="port 0"):
        await resolve_checked("93.184.216.34", 0)


async def test_pinned_url_connects_to_the_checked_address_with_the_real_host(
    dns: Callable[..., list[str]],
) -> None:
    app = create_fake_provider(models=["fake-gpt"])
    async with serve_app(app) as url:
        port = int(url.rsplit(":", 1)[1])
        asked = dns({"provider.test": ["127.0.0.1"]})
        pinned = await outbound.pin_outbound_url(
            f"http://provider.test:{port}/v1/", allow=["127.0.0.1"]
        )
        assert pinned.url == f"http://127.0.0.1:{port}/v1"
        assert pinned.headers == {"Host": f"provider.test:{port}"}
        # The name is unknown to the machine's resolver: this only connects because the
        # client goes to the pinned address instead of asking DNS again.
        async with httpx.AsyncClient() as client:
            answer = await client.get(
                pinned.join("models"),
                headers={**pinned.headers, "Authorization": "Bearer sk-test"},
            )
        assert answer.status_code == 200
        assert app.state.requests[-1].headers["host"] == f"provider.test:{port}"
        assert asked == ["provider.test"]


@pytest.mark.usefixtures("no_dns")
async def test_pinned_https_url_keeps_the_name_for_tls() -> None:
    pinned = await outbound.pin_outbound_url("https://[2606:2800:220:1::1946]:8443/v1")
    assert pinned.url == "https://[2606:2800:220:1::1946]:8443/v1"
    assert pinned.extensions == {"sni_hostname": "2606:2800:220:1::1946"}


async def test_pinning_refuses_what_the_check_refuses(dns: Callable[..., list[str]]) -> None:
    dns({"rebind.example": ["10.0.0.1"]})
    with pytest.raises(OutboundURLRefused, match="private"):
        await outbound.pin_outbound_url("https://rebind.example/v1")
