"""The security audit's HTTP-parsing attacks, replayed byte for byte over loopback against a
running proxy (local mode: no key is needed, so whatever the parser lets through would reach
the simulated upstream). One row per attack; each holds the proxy to the exact statuses, a
close or a connection still in step, what the simulator saw, a healthy next connection and
no descriptor left behind (tests/server/audit_wire.py does the checking).

Rows name where security-audit.md lists them ("parsing" is its "Tried and held up / HTTP
parsing" list). Where our parser (server/http1.py, server/chunked.py) answers differently
from the h11 the audit ran against, the row says so. Resets (C1) are tests/server/test_resets.py;
connections, pipelining, slow clients and upgrades are test_audit_http_connections.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.server.audit_requests import (
    CHUNKED,
    CLAUDE,
    FORWARDED,
    HOST,
    LENGTH,
    MESSAGE,
    POST,
    SMUGGLED,
    chunked,
    fast_timeouts,
    get,
    row,
)
from tests.server.audit_wire import Attack, Step, check_attack, errors_logged

FRAMING = [
    row("te_and_cl_then_a_smuggled_request", "L7",
        POST + CHUNKED + b"content-length: 4\r\n\r\n" + chunked() + SMUGGLED, 400),
    row("two_different_content_lengths", "parsing: 400",
        POST + b"content-length: 4\r\n" + LENGTH + b"\r\n" + MESSAGE + SMUGGLED, 400),
    row("a_content_length_list_that_disagrees", "parsing: 400",
        POST + b"content-length: 4, %d\r\n\r\n" % len(MESSAGE) + MESSAGE + SMUGGLED, 400),
    row("the_same_content_length_twice_as_h11", "parsing: 400 (its twin)",
        POST + LENGTH + LENGTH + b"\r\n" + MESSAGE, 200, then="reusable", upstream=FORWARDED),
    row("content_length_minus_one", "parsing: 400", POST + b"content-length: -1\r\n\r\n", 400),
    row("content_length_1e3", "parsing: 400", POST + b"content-length: 1e3\r\n\r\n" + SMUGGLED, 400),
    row("content_length_plus_5", "parsing: 400", POST + b"content-length: +5\r\n\r\n" + SMUGGLED, 400),
    row("content_length_empty", "parsing: 400", POST + b"content-length:\r\n\r\n" + SMUGGLED, 400),
    row("content_length_of_21_digits", "parsing: 400",
        POST + b"content-length: %021d\r\n\r\n" % len(MESSAGE) + MESSAGE, 400),
    row("content_length_over_max_body_bytes_refused_unread", "M2",
        POST + b"content-length: 70000000\r\n\r\n", 413),
    row("content_length_of_20_nines", "M2", POST + b"content-length: %s\r\n\r\n" % (b"9" * 20), 413),
    row("te_with_a_vertical_tab", "parsing: 400",
        POST + b"transfer-encoding: chunked\x0b\r\n\r\n" + chunked() + SMUGGLED, 400),
    row("te_chunked_identity", "parsing: 501",
        POST + b"transfer-encoding: chunked, identity\r\n\r\n" + chunked() + SMUGGLED, 501),
    row("te_identity", "parsing: 501",
        POST + b"transfer-encoding: identity\r\n\r\n" + chunked() + SMUGGLED, 501),
    row("te_xchunked", "parsing: 501",
        POST + b"transfer-encoding: xchunked\r\n\r\n" + chunked() + SMUGGLED, 501),
    row("te_chunked_twice", "parsing: 501", POST + CHUNKED + CHUNKED + b"\r\n" + chunked(), 501),
    row("te_chunked_in_capitals_as_h11", "parsing",
        POST + b"transfer-encoding: CHUNKED\r\n\r\n" + chunked(), 200,
        then="reusable", upstream=FORWARDED),
    row("te_with_a_space_before_the_colon", "parsing: 400",
        POST + b"transfer-encoding : chunked\r\n\r\n" + chunked() + SMUGGLED, 400),
    # RFC 9112 §5.2 lets a server replace obs-fold by a space (h11 does): then it is chunked.
    row("te_obs_folded_is_joined_then_chunked", "parsing: obs-fold served",
        POST + b"transfer-encoding:\r\n chunked\r\n\r\n" + chunked(), 200,
        then="reusable", upstream=FORWARDED),
    row("http10_chunked_is_decoded_then_closed", "parsing",
        b"POST /v1/messages HTTP/1.0\r\n" + CLAUDE + CHUNKED + b"\r\n" + chunked(), 200,
        upstream=FORWARDED),
]  # fmt: skip

CHUNKS = [
    row("chunk_size_zz", "parsing: 400", POST + CHUNKED + b"\r\n" + chunked(b"zz") + SMUGGLED, 400),
    row("chunk_size_minus", "parsing", POST + CHUNKED + b"\r\n" + chunked(b"-5") + SMUGGLED, 400),
    row("chunk_size_0x", "parsing", POST + CHUNKED + b"\r\n" + chunked(b"0x56") + SMUGGLED, 400),
    row("chunk_size_of_17_hex_digits", "parsing",
        POST + CHUNKED + b"\r\n" + chunked(b"%017x" % len(MESSAGE)) + SMUGGLED, 400),
    row("chunk_size_of_16_hex_digits_waits_then_hang_up", "parsing: waited for data",
        (POST + CHUNKED + b"\r\nffffffffffffffff\r\n" + MESSAGE, Step.HALF_CLOSE), 400),
    # h11 answered 431 (and served 60 KB); our size line is bounded at 4 KiB, like h11's
    # response reader, and a longer one is a malformed request.
    row("chunk_extension_of_200k_refused_400", "parsing: 431 under h11",
        POST + CHUNKED + b"\r\n" + chunked(b"56;" + b"a" * 200_000) + SMUGGLED, 400),
    row("chunk_extension_of_60k_refused_400", "parsing: served under h11",
        POST + CHUNKED + b"\r\n" + chunked(b"56;" + b"a" * 60_000) + SMUGGLED, 400),
    row("chunk_extension_short", "parsing", POST + CHUNKED + b"\r\n" + chunked(b"56;a=b"),
        200, then="reusable", upstream=FORWARDED),
    row("chunk_extension_with_a_bare_cr", "parsing",
        POST + CHUNKED + b"\r\n" + chunked(b"56;a\rb") + SMUGGLED, 400),
    row("chunk_data_then_a_bare_lf", "parsing",
        POST + CHUNKED + b"\r\n56\r\n" + MESSAGE + b"\n0\r\n\r\n" + SMUGGLED, 400),
    row("chunk_longer_than_its_size", "parsing",
        POST + CHUNKED + b"\r\n3\r\n" + MESSAGE + b"\r\n0\r\n\r\n" + SMUGGLED, 400),
    row("chunk_size_line_ended_by_a_bare_lf", "parsing",
        POST + CHUNKED + b"\r\n56\n" + MESSAGE + b"\r\n0\r\n\r\n" + SMUGGLED, 400),
    # Fixed by this suite: trailers were dropped unread, malformed or not (h11 refuses).
    row("trailer_without_a_colon", "parsing: trailers",
        POST + CHUNKED + b"\r\n" + chunked(trailer=b"no colon\r\n") + SMUGGLED, 400),
    row("trailer_with_a_nul", "parsing: trailers",
        POST + CHUNKED + b"\r\n" + chunked(trailer=b"x-a: \x00\r\n") + SMUGGLED, 400),
    row("trailer_with_a_space_before_the_colon", "parsing: trailers",
        POST + CHUNKED + b"\r\n" + chunked(trailer=b"x-a : b\r\n") + SMUGGLED, 400),
    row("trailer_framing_fields_are_dropped", "parsing: trailers",
        POST + CHUNKED + b"\r\n" + chunked(trailer=b"content-length: 5\r\n" + CHUNKED), 200,
        then="reusable", upstream=FORWARDED),
]  # fmt: skip

HEADS = [
    row("nul_in_a_value", "parsing: 400", get(HOST + b"x-a: a\x00b\r\n"), 400),
    row("nul_in_a_name", "parsing", get(HOST + b"x\x00a: b\r\n"), 400),
    row("nul_in_the_target", "parsing", get(line=b"GET /heal\x00thz HTTP/1.1"), 400),
    row("nul_in_the_host", "parsing", get(b"host: 127.0.0.1\x00.evil.example\r\n"), 400),
    row("bare_cr_in_a_value", "parsing: 400", get(HOST + b"x-a: a\rb\r\n"), 400),
    row("bare_cr_ending_the_request_line", "parsing", b"GET /healthz HTTP/1.1\r" + HOST + b"\r\n", 400),
    row("cr_cr_lf", "parsing", b"GET /healthz HTTP/1.1\r\r\n" + HOST + b"\r\n", 400),
    row("bare_lf_line_endings_as_h11", "parsing: served",
        b"GET /healthz HTTP/1.1\nhost: 127.0.0.1\n\n", 200, then="reusable"),
    row("space_before_a_colon", "parsing: 400", get(HOST + b"x-a : b\r\n"), 400),
    row("obs_fold_joined_as_h11", "parsing: served", get(HOST + b"x-a: b\r\n c\r\n"), 200,
        then="reusable"),
    row("obs_fold_before_any_field", "parsing", get(b" x-a: b\r\n" + HOST), 400),
    row("a_line_without_a_colon", "parsing", get(HOST + b"no colon\r\n"), 400),
    row("an_empty_field_name", "parsing", get(HOST + b": x\r\n"), 400),
    row("non_ascii_in_the_target", "parsing", get(line=b"GET /healthz\xc3\xa9 HTTP/1.1"), 400),
    row("non_ascii_in_a_value_is_obs_text", "parsing", get(HOST + b"x-a: caf\xc3\xa9\r\n"), 200,
        then="reusable"),
    row("non_ascii_in_a_name", "parsing", get(HOST + b"x-\xc3\xa9: b\r\n"), 400),
    row("non_ascii_in_the_method", "parsing", get(line=b"G\xc3\x89T /healthz HTTP/1.1"), 400),
    row("a_utf8_bom_first", "parsing", b"\xef\xbb\xbf" + get(), 400),
    row("an_empty_line_first", "parsing", b"\r\n" + get(), 400),
    row("http09", "parsing: 400", b"GET /healthz\r\n\r\n", 400),
    row("http2_preface", "parsing: 404", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 404, 400),
    row("http12_read_as_h11_does", "parsing", get(line=b"GET /healthz HTTP/1.2"), 200,
        then="reusable"),
    row("lowercase_http_version", "parsing", get(line=b"GET /healthz http/1.1"), 400),
    row("two_spaces_in_the_request_line", "parsing", get(line=b"GET  /healthz HTTP/1.1"), 400),
    row("a_tab_in_the_request_line", "parsing", get(line=b"GET\t/healthz HTTP/1.1"), 400),
    row("a_space_after_the_version", "parsing", get(line=b"GET /healthz HTTP/1.1 "), 400),
]  # fmt: skip

TARGETS = [
    row("a_method_that_is_not_a_token", "parsing", get(line=b"G@T /healthz HTTP/1.1"), 400),
    row("lowercase_method", "parsing: 404",
        get(HOST + CLAUDE, b"get /v1/models HTTP/1.1"), 404, then="reusable"),
    row("trace", "parsing", get(HOST + CLAUDE, b"TRACE /v1/messages HTTP/1.1"), 404,
        then="reusable"),
    row("connect", "parsing: 404", get(line=b"CONNECT 127.0.0.1:80 HTTP/1.1"), 404, then="reusable"),
    row("options_asterisk", "parsing", get(line=b"OPTIONS * HTTP/1.1"), 404, then="reusable"),
    row("absolute_form_elsewhere", "SSRF: 404",
        get(HOST + CLAUDE, b"GET http://evil.example/v1/models HTTP/1.1"), 404, then="reusable"),
    row("absolute_form_post_elsewhere", "SSRF: 404",
        b"POST http://evil.example/v1/messages HTTP/1.1\r\n" + HOST + CLAUDE + LENGTH + b"\r\n"
        + MESSAGE, 404, then="reusable"),
    row("absolute_form_here", "SSRF", get(line=b"GET http://127.0.0.1/healthz HTTP/1.1"), 404,
        then="reusable"),
    row("absolute_form_with_userinfo", "SSRF",
        get(line=b"GET http://127.0.0.1@evil.example/healthz HTTP/1.1"), 404, then="reusable"),
    row("authority_form", "SSRF", get(line=b"GET 127.0.0.1:80 HTTP/1.1"), 404, then="reusable"),
    row("double_slash_target", "SSRF: 404",
        b"POST //evil.example/v1/messages HTTP/1.1\r\n" + HOST + CLAUDE + LENGTH + b"\r\n"
        + MESSAGE, 404, then="reusable"),
    # The three that pass go to the configured upstream host (the simulator says 404).
    row("backend_api_double_slash_stays_upstream", "SSRF",
        get(line=b"GET /backend-api//evil.example/x HTTP/1.1"), 404, then="reusable",
        upstream=("/backend-api//evil.example/x",)),
    row("a_fragment_is_not_forwarded", "SSRF",
        get(line=b"GET /backend-api/#@evil.example/ HTTP/1.1"), 404, then="reusable",
        upstream=("/backend-api/",)),
    row("an_at_in_the_query_stays_upstream", "SSRF",
        get(line=b"GET /backend-api/me?@evil.example HTTP/1.1"), 404, then="reusable",
        upstream=("/backend-api/me?@evil.example",)),
    row("dot_segments", "H4",
        b"POST /v1/../v1/messages HTTP/1.1\r\n" + HOST + CLAUDE + LENGTH + b"\r\n" + MESSAGE,
        400, then="reusable"),
    row("an_encoded_slash", "H4", get(line=b"GET /backend-api/x%2f..%2fme HTTP/1.1"), 400,
        then="reusable"),
]  # fmt: skip

HOSTS_AND_SIZES = [
    row("no_host_in_http11", "parsing", b"GET /healthz HTTP/1.1\r\n\r\n", 400),
    row("two_hosts", "parsing", get(HOST + b"host: evil.example\r\n"), 400),
    row("a_foreign_host", "H1", get(b"host: rebind.attacker.example\r\n"), 421, then="reusable"),
    row("absolute_form_here_with_a_foreign_host", "H1",
        get(b"host: evil.example\r\n", b"GET http://127.0.0.1/healthz HTTP/1.1"), 421,
        then="reusable"),
    # No page can send an empty Host: a browser always names the site.
    row("an_empty_host", "H1", get(b"host:\r\n"), 200, then="reusable"),
    row("http10_without_host", "parsing: served", b"GET /healthz HTTP/1.0\r\n\r\n", 200),
    row("http10_post_without_host", "parsing: served",
        b"POST /v1/messages HTTP/1.0\r\n" + CLAUDE + LENGTH + b"\r\n" + MESSAGE, 200,
        upstream=FORWARDED),
    row("a_70k_header_line", "parsing: 431", get(HOST + b"x-a: " + b"a" * 70_000 + b"\r\n"), 431),
    row("a_head_over_64k_in_short_lines", "parsing: 431",
        get(HOST + (b"x-a: " + b"a" * 32 + b"\r\n") * 1900), 431),
    row("eleven_thousand_headers", "parsing: 31 ms", get(HOST + b"a:1\r\n" * 11_000), 200,
        then="reusable"),
]  # fmt: skip

ATTACKS = FRAMING + CHUNKS + HEADS + TARGETS + HOSTS_AND_SIZES


@pytest.mark.parametrize("attack", ATTACKS, ids=str)
async def test_each_parsing_attack_gets_its_answer_and_nothing_more(
    make_env: Callable[..., Any], attack: Attack, caplog: pytest.LogCaptureFixture
) -> None:
    """The audit's row: the exact statuses, then a close or a connection still in step;
    only what the row names reaches upstream; /healthz answers; descriptors are freed;
    nothing is logged as an error."""
    env = await make_env(tweak=fast_timeouts)
    await check_attack(env, attack)
    assert errors_logged(caplog) == []


def test_the_table_names_each_attack_once() -> None:
    """Test ids are the attacks' names: one row each."""
    names = [attack.name for attack in ATTACKS]
    assert len(names) == len(set(names))
