"""MultiNode and PyTorchSpawnMultiNode: one work per node, started together, as `lightning.app.components` has them.

`MultiNode(work_cls, num_nodes, cloud_compute, *work_args, **work_kwargs)` is a flow holding `num_nodes` works of
`work_cls`, each on its own machine (`parallel=True`). Once every node's machine is placed (its `internal_ip` is
known), every node runs `run(main_address=..., main_port=..., num_nodes=..., node_rank=...)` with rank 0's private
address and port, so the nodes can rendezvous at rank 0.

What lit does beyond Lightning:
- a node that finished is stopped at once (its machine is released; a GPU machine stops);
- one failed node fails the app, naming its rank and its error;
- locally (no --cloud) lit runs `num_nodes` processes, each with its own port (Lightning ran one node).

`PyTorchSpawnMultiNode(work_cls, cloud_compute, num_nodes, ...)` is a MultiNode whose works start one process per
local GPU (one on a CPU machine) with the torch.distributed environment set and the process group initialised,
then call the user's `run(world_size, node_rank, global_rank, local_rank)` in each.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Optional

from ..compute import CloudCompute
from ..flow import LightningFlow
from ..structures import List
from ..work import LightningWork

TORCH_MISSING = "PyTorchSpawnMultiNode needs PyTorch on the node's machine: pip install torch"


class MultiNode(LightningFlow):
    """`num_nodes` works of `work_cls` that run together, each on its own machine.

    Arguments are Lightning's: `work_cls` (a LightningWork whose `run` takes `main_address`, `main_port`,
    `num_nodes` and `node_rank`), `num_nodes`, `cloud_compute` (the machine of every node), then the work's own
    constructor arguments. The works get `cloud_compute=` and `parallel=True` as keyword arguments.
    """

    def __init__(self, work_cls: type[LightningWork], num_nodes: int, cloud_compute: CloudCompute,
                 *work_args: Any, **work_kwargs: Any) -> None:
        super().__init__()
        if not isinstance(work_cls, type) or not issubclass(work_cls, LightningWork):
            raise TypeError(f"{type(self).__name__}: work_cls must be a LightningWork subclass, got {work_cls!r}")
        if isinstance(num_nodes, bool) or not isinstance(num_nodes, int) or num_nodes < 1:
            raise ValueError(f"{type(self).__name__}: num_nodes must be an int >= 1, got {num_nodes!r}")
        if not isinstance(cloud_compute, CloudCompute):
            raise TypeError(f"{type(self).__name__}: cloud_compute must be a CloudCompute, got {cloud_compute!r}")
        works = []
        for _ in range(num_nodes):
            # CloudCompute is immutable in lit, so the nodes can share one (Lightning clones it per node).
            work = work_cls(*work_args, cloud_compute=cloud_compute, **work_kwargs, parallel=True)
            # A node's failure is handled here, so the app's end names the node's rank, not only its work name.
            object.__setattr__(work, "_lit_raise_exception", False)
            works.append(work)
        self.ws = List(*works)
        # Rank 0's address and port, fixed when the nodes are launched: every later tick repeats the very same
        # calls, which lit recognises as the ones already made.
        self._main: Optional[tuple[str, int]] = None
        self._finished: set[int] = set()

    def run(self) -> None:
        for rank, work in enumerate(self.ws):
            if work.has_failed and rank not in self._finished:
                self.fail(f"{type(self).__name__}: node_rank {rank} failed ({work.name}): {work.status.message}")
        if self._main is None:
            # Wait until every machine is placed: rank 0's address must be known, and the ranks start together.
            if not all(work.internal_ip for work in self.ws):
                return
            main = self.ws[0]
            assert main.port is not None  # lit gives every work a port when it starts
            self._main = (main.internal_ip, main.port)
        main_address, main_port = self._main
        for rank, work in enumerate(self.ws):
            if rank in self._finished:
                continue
            work.run(main_address=main_address, main_port=main_port, num_nodes=len(self.ws), node_rank=rank)
            if work.has_succeeded:
                # Done: release its machine now rather than when the slowest node ends (a GPU costs by the second).
                self._finished.add(rank)
                work.stop()


class PyTorchSpawnMultiNode(MultiNode):
    """A MultiNode whose nodes run `work_cls.run(world_size, node_rank, global_rank, local_rank)` in one process
    per local GPU (one process on a CPU machine), torch.distributed initialised (nccl on GPUs, gloo otherwise).

    The argument order is Lightning's: `work_cls, cloud_compute, num_nodes`. torch is imported on the nodes only.
    """

    def __init__(self, work_cls: type[LightningWork], cloud_compute: CloudCompute, num_nodes: int,
                 *work_args: Any, **work_kwargs: Any) -> None:
        if not isinstance(work_cls, type) or not issubclass(work_cls, LightningWork):
            raise TypeError(f"{type(self).__name__}: work_cls must be a LightningWork subclass, got {work_cls!r}")
        super().__init__(_spawning(work_cls), num_nodes, cloud_compute, *work_args, **work_kwargs)


# -- the node side of PyTorchSpawnMultiNode -------------------------------------------------------------------------

_SPAWNING: dict[type[LightningWork], type[LightningWork]] = {}


def _spawning(work_cls: type[LightningWork]) -> type[LightningWork]:
    """A subclass of `work_cls` whose run(main_address, main_port, num_nodes, node_rank) starts the local ranks.

    A subclass rather than a change to the user's class (Lightning swaps the class's run executor): the user's
    class stays usable on its own. The same subclass is made in the work's process when it loads the app, where
    lit finds the work by its place in the tree."""
    found = _SPAWNING.get(work_cls)
    if found is not None:
        return found
    user_run = work_cls.run

    def run(self: LightningWork, main_address: str, main_port: int, num_nodes: int, node_rank: int) -> None:
        _run_node(self, user_run, main_address, main_port, num_nodes, node_rank)

    spawning = type(work_cls.__name__, (work_cls,), {"run": run, "__module__": work_cls.__module__,
                                                     "__qualname__": work_cls.__qualname__})
    _SPAWNING[work_cls] = spawning
    return spawning


def _import_torch() -> Any:
    try:
        import torch
        import torch.distributed
        import torch.multiprocessing
    except ImportError as exc:
        raise ModuleNotFoundError(TORCH_MISSING) from exc
    return torch


def _local_processes(torch: Any) -> int:
    if torch.cuda.is_available():
        return int(torch.cuda.device_count())
    xpu = getattr(torch, "xpu", None)
    if xpu is not None and xpu.is_available():
        return int(xpu.device_count())
    return 1


def _run_node(work: LightningWork, user_run: Any, main_address: str, main_port: int, num_nodes: int,
              node_rank: int) -> None:
    """In the node's work process: local rank 0 runs here (its state changes reach the flow, as in Lightning where
    only local rank 0 reports state); local ranks 1.. run in spawned processes that load the app and find the
    work by name, since a work holds its link to lit and cannot be pickled."""
    torch = _import_torch()
    nprocs = _local_processes(torch)
    dist = (main_address, int(main_port), int(num_nodes), int(node_rank), nprocs)
    children = None
    if nprocs > 1:
        app_file = getattr(sys.modules.get("__lit_app__"), "__file__", None)
        if not app_file:
            raise RuntimeError(f"{work.name}: the app file is not known in this process; cannot start local ranks")
        state = {name: value for name, value in work._lit_vars().items()}
        children = torch.multiprocessing.start_processes(
            _spawned_rank, args=(app_file, work.name, state, dist), nprocs=nprocs - 1, join=False,
            start_method="spawn")
    try:
        _run_rank(torch, user_run, work, 0, dist)
        while children is not None and not children.join():
            pass  # join() raises when a local rank failed, naming it
    finally:
        if children is not None:
            for process in children.processes:
                if process.is_alive():
                    process.terminate()


def _spawned_rank(index: int, app_file: str, work_name: str, state: dict[str, Any],
                  dist: tuple[str, int, int, int, int]) -> None:
    """A spawned process for local rank index + 1: the app loaded afresh, the work found by name."""
    from ..loader import load_app

    torch = _import_torch()
    work = load_app(app_file).find(work_name)
    if not isinstance(work, LightningWork):
        raise RuntimeError(f"{work_name} is not a LightningWork in {app_file}")
    for name, value in state.items():
        object.__setattr__(work, name, value)  # no link to lit here: only local rank 0 reports state
    object.__setattr__(work, "_lit_executing", True)  # the user's run() runs here, not through the flow
    user_run = type(work).__mro__[1].run
    _run_rank(torch, user_run, work, index + 1, dist)


def _run_rank(torch: Any, user_run: Any, work: LightningWork, local_rank: int,
              dist: tuple[str, int, int, int, int]) -> None:
    main_address, main_port, num_nodes, node_rank, nprocs = dist
    world_size = num_nodes * nprocs
    global_rank = node_rank * nprocs + local_rank
    # The variables torchrun sets, so code that calls init_process_group("env://") itself works too.
    os.environ.update(MASTER_ADDR=main_address, MASTER_PORT=str(main_port), WORLD_SIZE=str(world_size),
                      RANK=str(global_rank), LOCAL_RANK=str(local_rank), NODE_RANK=str(node_rank),
                      LOCAL_WORLD_SIZE=str(nprocs), GROUP_RANK=str(node_rank))
    started_group = False
    if torch.distributed.is_available():
        if not torch.distributed.is_initialized():
            if torch.cuda.is_available():
                torch.cuda.set_device(local_rank)
                backend = "nccl"
            elif getattr(torch, "xpu", None) is not None and torch.xpu.is_available():
                backend = "ccl"
            else:
                backend = "gloo"
            torch.distributed.init_process_group(backend, rank=global_rank, world_size=world_size,
                                                 init_method=f"tcp://{main_address}:{main_port}")
            started_group = True
    elif world_size > 1:
        raise RuntimeError("this torch build has no torch.distributed; install one that has it")
    try:
        user_run(work, world_size, node_rank, global_rank, local_rank)
    finally:
        if started_group:
            # A later call (cache_calls=False) sets the group up again in this same process.
            torch.distributed.destroy_process_group()
