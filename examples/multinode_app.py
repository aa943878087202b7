# Three nodes meet at rank 0 over TCP and sum their values: the rendezvous a distributed job does.
# Locally each node is a process with its own port; with --cloud each node is its own machine.
#   lit run examples/multinode_app.py                 # 3 local processes, exit 0
#   lit run examples/multinode_app.py --cloud NAME    # 3 machines
# Knobs (passed with --env): MULTINODE_NODES and MULTINODE_COMPUTE size the run; MULTINODE_FAIL_RANK=N makes rank
# N raise; MULTINODE_HOLD=S keeps rank r running r*S seconds after the sum (staggered ends).
import os
import socket
import struct
import time

import lit as L
from lit.components import MultiNode

CONNECT_SECONDS = 60.0


def _read_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("peer closed the connection mid-message")
        data += chunk
    return data


def all_reduce_sum(value: int, main_address: str, main_port: int, num_nodes: int, node_rank: int,
                   bind_host: str) -> int:
    """Rank 0 listens on main_port, takes every other rank's value, and sends back the total."""
    if node_rank == 0:
        with socket.create_server((bind_host, main_port)) as server:
            server.settimeout(CONNECT_SECONDS)
            peers = [server.accept()[0] for _ in range(num_nodes - 1)]
            total = value + sum(struct.unpack("!q", _read_exact(p, 8))[0] for p in peers)
            for peer in peers:
                peer.sendall(struct.pack("!q", total))
                peer.close()
            return total
    deadline = time.monotonic() + CONNECT_SECONDS
    while True:  # rank 0 may not be listening yet: the ranks start together, not in order
        try:
            sock = socket.create_connection((main_address, main_port), timeout=5)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    with sock:
        sock.sendall(struct.pack("!q", value))
        return struct.unpack("!q", _read_exact(sock, 8))[0]


class SumNode(L.LightningWork):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.total = None
        self.hostname = ""

    def run(self, main_address: str, main_port: int, num_nodes: int, node_rank: int) -> None:
        self.hostname = socket.gethostname()
        print(f"node_rank {node_rank} of {num_nodes} on {self.hostname} started at {time.time():.3f}", flush=True)
        if os.environ.get("MULTINODE_FAIL_RANK") == str(node_rank):
            raise RuntimeError(f"rank {node_rank} was told to fail")
        value = (node_rank + 1) * 10
        self.total = all_reduce_sum(value, main_address, main_port, num_nodes, node_rank, self.host)
        print(f"node_rank {node_rank} total {self.total}", flush=True)
        time.sleep(float(os.environ.get("MULTINODE_HOLD", "0")) * node_rank)


app = L.LightningApp(MultiNode(SumNode, num_nodes=int(os.environ.get("MULTINODE_NODES", "3")),
                               cloud_compute=L.CloudCompute(os.environ.get("MULTINODE_COMPUTE", "default"))))
