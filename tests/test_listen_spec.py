"""-l's grammar (kvshard.listen_spec): what each element means, what memcached 1.6.18 refuses
(its message and 71; tests/test_cli.py runs those against the real memcached too) and what it
would misread (kvshard's message and 64)."""

from __future__ import annotations

import pytest

from kvshard.listen_spec import Listener, join_listen_flags, listener_hosts, parse_listeners
from kvshard.memcached_options import UsageError


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1", [Listener("127.0.0.1", text="127.0.0.1")]),
    ("127.0.0.1:12000", [Listener("127.0.0.1", 12000, text="127.0.0.1:12000")]),
    ("proto[ascii]:127.0.0.1:12000", [Listener("127.0.0.1", 12000, "ascii", text="proto[ascii]:127.0.0.1:12000")]),
    ("proto[binary]:h", [Listener("h", 0, "binary", text="proto[binary]:h")]),
    ("proto[negotiating]:h", [Listener("h", 0, "auto", text="proto[negotiating]:h")]),
    ("proto[b]:h", [Listener("h", 0, "binary", text="proto[b]:h")]),  # memcached compares the letters given
    ("proto[asc]:h", [Listener("h", 0, "ascii", text="proto[asc]:h")]),
    ("tag[edge]:h", [Listener("h", tag="edge", text="tag[edge]:h")]),
    ("proto[ascii]:tag[12345678]:[::1]:5", [Listener("::1", 5, "ascii", tag="12345678", text="proto[ascii]:tag[12345678]:[::1]:5")]),
    ("[::1]", [Listener("::1", text="[::1]")]),
    ("::1", [Listener("::1", text="::1")]),  # no brackets: no port
    ("*", [Listener("", text="*")]),
    ("*:7", [Listener("", 7, text="*:7")]),
    ("a;b,,c", [Listener("a", text="a"), Listener("b", text="b"), Listener("c", text="c")]),
])
def test_elements(text: str, expected: list[Listener]) -> None:
    assert list(parse_listeners(text, tls_enabled=False)) == expected


def test_notls_needs_tls() -> None:
    assert parse_listeners("notls:proto[ascii]:h:9", tls_enabled=True) == (
        Listener("h", 9, "ascii", notls=True, text="notls:proto[ascii]:h:9"),)
    with pytest.raises(UsageError) as refused:
        parse_listeners("h,notls:h:9", tls_enabled=False)
    assert refused.value.status == 71
    assert str(refused.value) == ("'notls' option is valid only when SSL is enabled failed to listen on one of "
                                  "interface(s) h,notls:h:9: Success")


@pytest.mark.parametrize(("text", "message"), [
    ("proto[ascii:h", 'Invalid protocol spec: "[ascii:h"'),
    ("tag[abc:h", 'Invalid tag in socket config: "[abc:h"'),
    ("tag[123456789]:h", 'Listener tags must be between 1 and 8 characters: "123456789"'),
    ("tag[]:h", 'Listener tags must be between 1 and 8 characters: ""'),
    ("h:abc", 'Invalid port number: "abc"'),
    ("h:", 'Invalid port number: ""'),
    ("h:5x", 'Invalid port number: "5x"'),
    ("[::1]:1:2", 'Invalid port number: "1:2"'),
    ("h:99999999999999999999", 'Invalid port number: "99999999999999999999"'),  # strtol's ERANGE
    ("[::1]x:1:2", 'Invalid port number: "1:2"'),  # before the text after "]" (which memcached ignores)
    ("tag[\u00e9\u00e9\u00e9\u00e9\u00e9]:h", 'Listener tags must be between 1 and 8 characters: "\u00e9\u00e9\u00e9\u00e9\u00e9"'),
    ("proto[ascii]:", "getaddrinfo(): Name or service not known"),
    ("proto[proxy]:h", 'Server not built with proxy: "proto[proxy"'),
    ("proto[p]:h", 'Server not built with proxy: "proto[p"'),
    # memcached goes on past what it misreads, and refuses what follows first
    ("proto[bogus]:h:abc", 'Invalid port number: "abc"'),
    ("proto[ascii]h", "getaddrinfo(): Name or service not known"),  # "h" skipped
    ("proto[ascii]1h:x", 'Invalid port number: "x"'),
    ("h:0,proto[ascii:h", 'Invalid protocol spec: "[ascii:h"'),
    # memcached prints its copy of the list up to the first NUL it wrote into it
    ("h:5,proto[proxy]:h", 'Server not built with proxy: "h"'),
    ("tag[x]:h,proto[proxy]:h", 'Server not built with proxy: "tag[x"'),
])
def test_memcacheds_refusals(text: str, message: str) -> None:
    with pytest.raises(UsageError) as refused:
        parse_listeners(text, tls_enabled=False)
    assert refused.value.status == 71
    assert str(refused.value) == f"{message} failed to listen on one of interface(s) {text}: Success"


def test_the_ipv6_refusal_has_no_line_break() -> None:
    with pytest.raises(UsageError) as refused:
        parse_listeners("[::1", tls_enabled=False)
    assert str(refused.value) == 'Invalid IPV6 address: "[::1"failed to listen on one of interface(s) [::1: Success'


@pytest.mark.parametrize(("text", "tls", "why"), [
    ("proto[bogus]:h", False, "proto[bogus] is no protocol"),  # memcached: -B's protocol
    ("proto[]:h", False, "proto[] is no protocol"),  # memcached: ascii
    ("protocol.example:1", False, "reads 'proto' without '[...]' as nothing"),  # memcached: host "col.example"
    ("tagged.example", False, "reads 'tag' without '[...]' as nothing"),
    ("proto[ascii]x127.0.0.1", False, "':' must follow 'proto[ascii]'"),  # memcached: "x" skipped
    ("tag[x]_h", False, "':' must follow 'tag[x]'"),
    ("notls_h", True, "':' must follow 'notls'"),
    ("[::1]x", False, "ignores 'x' after the address in brackets"),
    ("h:0", False, "port '0' is not a port number from 1 to 65535"),  # memcached: a port of the kernel's choice
    ("h:-1", False, "port '-1' is not a port number"),
    ("h:70000", False, "port '70000' is not a port number"),  # memcached: 4464
    ("h: 5", False, "port ' 5' is not a port number"),
    ("h:5 x", False, "port '5 x' is not a port number"),
    ("h:\u00b2", False, "Invalid port number"),  # not a C digit: memcached refuses it
    (",;", False, "no address given"),  # memcached: no listener at all
])
def test_misreads_are_refused(text: str, tls: bool, why: str) -> None:
    with pytest.raises(UsageError) as refused:
        parse_listeners(text, tls_enabled=tls)
    assert why in str(refused.value)
    assert refused.value.status == (71 if "Invalid port number" in why else 64)


def test_several_flags_join_as_memcacheds() -> None:
    assert join_listen_flags(["127.0.0.1"]) == "127.0.0.1"
    assert join_listen_flags(["127.0.0.1", "::1", "proto[ascii]:h:5"]) == "127.0.0.1,::1,proto[ascii]:h:5"
    assert join_listen_flags(["a,b", "b", "a,b"]) == "a,b"  # memcached drops a text it already has
    assert join_listen_flags(["a,b", "a;b"]) == "a,b,a;b"  # (strstr: not the same text)
    with pytest.raises(UsageError, match="part of an earlier one"):
        join_listen_flags(["h:1000", "h:100"])  # memcached would drop h:100 silently


def test_hosts_for_the_metrics_endpoint() -> None:
    listeners = parse_listeners("proto[ascii]:127.0.0.1:5,127.0.0.1,tag[x]:[::1]:6,*", tls_enabled=False)
    assert listener_hosts(listeners) == ("127.0.0.1", "::1", "")


def test_description_for_the_log() -> None:
    listener, plain = parse_listeners("notls:proto[binary]:tag[t]:[::1]:5,h", tls_enabled=True)
    assert listener.describe(11211) == "[::1]:5 (proto binary, notls, tag t)"
    assert plain.describe(11211) == "h:11211"
