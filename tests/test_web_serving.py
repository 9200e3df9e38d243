"""digest.web.serving: the protocol uvicorn runs the app with."""

from __future__ import annotations

import asyncio
import socket

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from digest.web.serving import HeaderTimeoutProtocol, server_config


async def _no_delay_after_accept(protocol: type[H11Protocol]) -> int:
    """Accept a connection on a listening socket made as ``digest serve`` makes it (and
    uvicorn for several workers): ``socket.socket(family)``, protocol number 0; hand it
    to ``protocol`` as the server would, and read TCP_NODELAY of the accepted socket."""
    config: uvicorn.Config = server_config(lambda: None, "WARNING")
    config.load()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    assert accepted.proto == 0  # asyncio turns Nagle off only when this says TCP
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_accepted_socket(
        lambda: protocol(config=config, server_state=ServerState(), app_state={}), accepted
    )
    try:
        return int(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
    finally:
        transport.close()
        await asyncio.sleep(0)  # the transport closes its socket on the next turn
        accepted.close()
        client.close()
        listener.close()


def test_nagle_is_off_on_every_connection_the_server_accepts() -> None:
    """With Nagle on, a response's body sent after its head on a kept-alive connection
    waited 40 ms for the client's delayed ACK (a one-click unsubscribe: 44 ms, not 2)."""
    assert asyncio.run(_no_delay_after_accept(H11Protocol)) == 0  # uvicorn's own: on
    assert asyncio.run(_no_delay_after_accept(HeaderTimeoutProtocol)) == 1
