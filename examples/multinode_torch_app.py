# A gloo all-reduce across nodes with PyTorchSpawnMultiNode: every process adds its rank, all see the same sum.
# Needs a build of torch on every node (a CPU build will do: pip install torch).
#   lit run examples/multinode_torch_app.py                 # 2 local nodes, one process each
#   lit run examples/multinode_torch_app.py --cloud NAME    # 2 machines, one process per GPU
import os

import lit as L
from lit.components import PyTorchSpawnMultiNode


class AllReduce(L.LightningWork):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.total = None

    def run(self, world_size: int, node_rank: int, global_rank: int, local_rank: int) -> None:
        import torch  # on the node only: the machine that starts the app needs no torch
        import torch.distributed as dist

        value = torch.tensor([float(global_rank + 1)])
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        expected = world_size * (world_size + 1) / 2
        print(f"global_rank {global_rank} of {world_size} (node {node_rank}, local {local_rank}): "
              f"sum {value.item():g}, expected {expected:g}", flush=True)
        if value.item() != expected:
            raise RuntimeError(f"all_reduce gave {value.item()}, expected {expected}")
        self.total = value.item()


app = L.LightningApp(PyTorchSpawnMultiNode(AllReduce, cloud_compute=L.CloudCompute("default"),
                                           num_nodes=int(os.environ.get("MULTINODE_NODES", "2"))))
