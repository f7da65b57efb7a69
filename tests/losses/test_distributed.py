"""gather_distributed=True with 2 gloo processes on CPU: the loss on every rank equals the
single-process loss on the concatenated batch, and DDP-averaged parameter gradients equal
the single-process gradients, for every registered loss."""
import socket
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from otzoo.losses import create_loss, list_losses

WORLD, B_LOCAL, D = 2, 4, 6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _data():
    g = torch.Generator().manual_seed(0)
    n = WORLD * B_LOCAL
    return torch.randn(n, D, generator=g), torch.randn(n, D, generator=g), torch.randn(n, D, generator=g)


def _call(name, model, x1, x2, tgt, **kw):
    z = model(torch.cat([x1, x2]))
    z1, z2 = z.chunk(2)
    extras = {"h1": 2 * z1 + 1, "h2": z2 - 1} if name == "sinsim" else {}
    if name == "byol":
        extras = {"t1": tgt[: len(x1)], "t2": tgt[len(x1):]}
    return create_loss(name, **kw)(z1, z2, **extras)


def _worker(rank, port):
    torch.set_num_threads(1)
    # a rank that hangs (seen once, forked from a busy pytest process) fails the test in 2 minutes instead
    # of blocking it for gloo's default 30
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=WORLD, timeout=timedelta(minutes=2))
    try:
        torch.manual_seed(0)
        model = torch.nn.Linear(D, D).double()
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        x1, x2, t = (x.double() for x in _data())
        sl = slice(rank * B_LOCAL, (rank + 1) * B_LOCAL)
        tgt = torch.cat([t[sl], t[sl]])  # byol targets: this rank's rows for both views
        for name in list_losses():
            ref_model = torch.nn.Linear(D, D).double()
            ref_model.load_state_dict(model.state_dict())
            ref = _call(name, ref_model, x1, x2, torch.cat([t, t]))
            ref.backward()
            ddp.zero_grad()
            out = _call(name, ddp, x1[sl], x2[sl], tgt, gather_distributed=True)
            out.backward()
            torch.testing.assert_close(out, ref, msg=f"{name}: loss on rank {rank}")
            for p, q in zip(model.parameters(), ref_model.parameters()):
                torch.testing.assert_close(p.grad, q.grad, msg=f"{name}: gradient on rank {rank}")
    finally:
        dist.destroy_process_group()


def test_gather_distributed_two_gloo_processes():
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    # fork starts in ~0.1 s; spawn re-imports torch in each child (~10-20 s on this shared
    # 2-core machine), so it is only the fallback where fork does not exist
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    mp.start_processes(_worker, args=(_free_port(),), nprocs=WORLD, join=True, start_method=method)


def test_gather_is_identity_without_process_group():
    z1, z2 = torch.randn(4, 3), torch.randn(4, 3)
    torch.testing.assert_close(create_loss("gca_uot", gather_distributed=True)(z1, z2),
                               create_loss("gca_uot")(z1, z2))
