"""Toxiproxy's own Python client (PyPI toxiproxy-python) against edgefault's Toxiproxy API, as a test
suite would use it: a proxy in front of a TCP echo server, a latency toxic whose effect is measured, errors
as the client's exceptions, a proxy taken down and brought back, reset, populate, delete.

Usage: toxiproxy_python.py API_HOST API_PORT ECHO_ADDR [TOKEN]. Prints one JSON line of what it measured;
any failed check exits non-zero with the reason.
"""

import json
import socket
import sys
import time

from toxiproxy import Toxiproxy
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists


def round_trip(listen, msg=b"ping"):
    host, port = listen.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        start = time.monotonic()
        s.sendall(msg)
        got = b""
        while len(got) < len(msg):
            chunk = s.recv(len(msg) - len(got))
            if not chunk:
                break
            got += chunk
        assert got == msg, f"echo returned {got!r}"
        return time.monotonic() - start


def refused(listen):
    host, port = listen.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
        return False
    except OSError:
        return True


def main():
    api_host, api_port, echo = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    token = sys.argv[4] if len(sys.argv) > 4 else None
    server = Toxiproxy()
    # With a token, it rides in the URL as the password: http://edgefault:TOKEN@host:port (requests sends
    # it as basic credentials).
    server.update_api_consumer(f"edgefault:{token}@{api_host}" if token else api_host, api_port)
    if token is None:
        # running() and version() connect to the host name as given, which a token in it would spoil.
        assert server.running(), "the API port accepts connections"
        version = server.version().decode()
    else:
        version = APIConsumer.get("/version").content.decode()

    proxy = server.create(upstream=echo, name="echo", listen="127.0.0.1:0")
    assert proxy.enabled is True and proxy.upstream == echo
    base = round_trip(proxy.listen)

    proxy.add_toxic(type="latency", attributes={"latency": 300, "jitter": 0})
    toxics = proxy.toxics()
    assert list(toxics) == ["latency_downstream"], toxics
    assert toxics["latency_downstream"].attributes == {"latency": 300, "jitter": 0}
    assert toxics["latency_downstream"].toxicity == 1
    slow = round_trip(proxy.listen)
    assert slow >= 0.3, f"latency toxic: round trip {slow:.3f}s"

    # The server's own refusals, as the client's exceptions.
    try:
        APIConsumer.post("/proxies", json={"name": "echo", "upstream": echo})
        raise AssertionError("a second proxy named echo was created")
    except ProxyExists:
        pass
    try:
        proxy.add_toxic(type="flood")
        raise AssertionError("a toxic of type flood was added")
    except InvalidToxic:
        pass
    try:
        APIConsumer.get("/proxies/nope")
        raise AssertionError("a missing proxy was found")
    except NotFound:
        pass

    assert proxy.destroy_toxic("latency_downstream")
    assert proxy.toxics() == {}
    fast = round_trip(proxy.listen)
    assert fast < 0.3, f"after removal: {fast:.3f}s"

    with proxy.down():
        assert refused(proxy.listen), "a disabled proxy refuses connections"
        assert server.get_proxy("echo").enabled is False
    assert server.get_proxy("echo").enabled is True
    round_trip(proxy.listen)

    proxy.add_toxic(type="timeout", stream="upstream", name="held", attributes={"timeout": 0})
    assert list(proxy.toxics()) == ["held"]
    assert server.reset()
    assert proxy.toxics() == {}

    populated = server.populate([{"name": "cache", "upstream": echo, "listen": "127.0.0.1:0"}])
    assert [p.name for p in populated] == ["cache"]
    assert sorted(server.proxies()) == ["cache", "echo"]

    server.destroy_all()
    assert server.proxies() == {}
    print(json.dumps({"version": version, "base_ms": base * 1000, "latency_ms": slow * 1000, "after_ms": fast * 1000}))


if __name__ == "__main__":
    main()
