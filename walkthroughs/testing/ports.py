"""Free local ports, for the Bytewax cluster addresses and the API server of a test or bench run.

Each run starts the dataflow on ports of its own, so that runs side by side (and a server already
running on the machine) never collide.
"""

from __future__ import annotations

import socket


def free_ports(n: int) -> list[int]:
    """Ports nothing listens on now (for Bytewax cluster addresses and the API server)."""
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports
