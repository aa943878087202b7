"""A port of a work's machine, reachable from this machine's loopback through lit's own connection to it.

`Forward` listens on 127.0.0.1 (an ephemeral port: nothing but this machine can connect) and relays each accepted
connection over a stream the machine's `Connection.tunnel` opens (an SSH direct-tcpip channel, a Kubernetes
pods/portforward websocket), one thread per connection. The machine may have no route from here (a private
subnet, a pod network): only lit's connection reaches it."""

from __future__ import annotations

import select
import socket
import threading
from typing import Callable

from lit.runtime.errors import LitError

from .base import Tunnel

CHUNK = 65536
ACCEPT_BACKLOG = 64
JOIN_SECONDS = 2.0  # how long close() waits for each relay thread to end


class Forward:
    """Connections to 127.0.0.1:`address[1]` reach `port` on one machine, through `open_tunnel`."""

    def __init__(self, name: str, port: int, open_tunnel: Callable[[int], Tunnel], machine_id: str = "",
                 on_close: Callable[[], None] = lambda: None) -> None:
        self.name = name
        self.port = port
        self.machine_id = machine_id
        self.open_tunnel = open_tunnel
        self.on_close = on_close
        self.lock = threading.Lock()
        self.closed = False
        self.clients: set[socket.socket] = set()
        self.threads: list[threading.Thread] = []
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self.listener.bind(("127.0.0.1", 0))  # loopback only: the forward must not open the machine to the LAN
            self.listener.listen(ACCEPT_BACKLOG)
        except OSError:
            self.listener.close()
            raise
        self.address: tuple[str, int] = ("127.0.0.1", self.listener.getsockname()[1])
        # close() writes here to wake the accept loop (closing a socket another thread blocks on wakes nothing).
        self._wake_r, self._wake_w = socket.socketpair()
        self.acceptor = threading.Thread(target=self._accept, name=f"lit-forward-{name}:{port}", daemon=True)
        self.acceptor.start()

    def _accept(self) -> None:
        try:
            while not self.closed:
                readable, _, _ = select.select([self.listener, self._wake_r], [], [])
                if self._wake_r in readable or self.closed:
                    return
                try:
                    client, _ = self.listener.accept()
                except OSError:
                    continue  # the client gave up between select and accept
                with self.lock:
                    if self.closed:
                        client.close()
                        return
                    self.clients.add(client)
                    relay = threading.Thread(target=self._relay, args=(client,), daemon=True,
                                             name=f"lit-forward-{self.name}:{self.port}-conn")
                    self.threads = [t for t in self.threads if t.is_alive()]
                    self.threads.append(relay)
                relay.start()
        finally:
            self.listener.close()

    def _relay(self, client: socket.socket) -> None:
        """Both ways until both sides have ended (an EOF is passed on as a half close), or either fails."""
        tunnel = None
        try:
            try:
                tunnel = self.open_tunnel(self.port)
            except LitError:
                return  # the machine's port is not reachable (nothing listens yet): the client sees a closed connection
            to_machine = from_machine = True
            while (to_machine or from_machine) and not self.closed:
                watched: list[object] = ([client] if to_machine else []) + ([tunnel] if from_machine else [])
                readable, _, _ = select.select(watched, [], [], 1.0)
                if client in readable:
                    data = client.recv(CHUNK)
                    if data:
                        tunnel.sendall(data)
                    else:
                        to_machine = False
                        tunnel.shutdown_write()
                if tunnel in readable:
                    data = tunnel.recv(CHUNK)
                    if data:
                        client.sendall(data)
                    else:
                        from_machine = False
                        client.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # either side reset: nothing to pass on
        finally:
            with self.lock:
                self.clients.discard(client)
            client.close()  # first: the client sees the end at once, however long the tunnel takes to close
            if tunnel is not None:
                try:
                    tunnel.close()
                except OSError:
                    pass

    def close(self) -> None:
        """Stop listening and end every relay (their clients see the connection closed)."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            clients = list(self.clients)
            threads = list(self.threads)
        self._wake_w.send(b"x")
        for client in clients:
            try:
                client.shutdown(socket.SHUT_RDWR)  # wakes its relay's select; the relay closes it
            except OSError:
                pass
        self.acceptor.join(JOIN_SECONDS)
        for thread in threads:
            thread.join(JOIN_SECONDS)
        for sock in (self._wake_r, self._wake_w):
            sock.close()
        self.on_close()
