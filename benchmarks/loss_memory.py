"""Peak memory of the dense and the blockwise contrastive losses (forward + backward) against batch size.

    python benchmarks/loss_memory.py [--batch-sizes 1024 2048 4096 8192 16384] [--dim 384] [--block-size 1024]
                                     [--losses info_nce sigmoid] [--device cpu|cuda] [--json]

Each measurement runs in a fresh process. On CPU it reports the growth of the peak resident set size (``ru_maxrss``)
over the process's size after the embeddings were made; on CUDA, ``torch.cuda.max_memory_allocated`` above the
embeddings. The dense InfoNCE holds a few ``B × B`` fp32 matrices (logits, softmax, their gradient: 1 GiB each at
B = 16,384); the blockwise form holds ``block × block`` tiles and ``[B, D]`` gradients, so its peak grows linearly.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import resource
import sys
import time

logger = logging.getLogger("loss_memory")


def _measure(loss: str, batch: int, dim: int, block: int | None, device: str, queue: mp.Queue) -> None:
    import torch

    from gpte.shared.losses import info_nce, sigmoid_loss

    g = torch.Generator(device=device).manual_seed(0)
    q = torch.randn(batch, dim, generator=g, device=device, requires_grad=True)
    d = torch.randn(batch, dim, generator=g, device=device, requires_grad=True)
    scale = torch.tensor(20.0, device=device, requires_grad=True)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    start = time.perf_counter()
    if loss == "info_nce":
        value = info_nce(q, d, scale=scale, symmetric=True, block_size=block)
    else:
        value = sigmoid_loss(q, d, scale=scale, bias=-10.0, block_size=block)
    value.backward()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    queue.put({"peak_bytes": peak, "seconds": time.perf_counter() - start})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1024, 2048, 4096, 8192, 16384])
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--block-size", type=int, default=1024)
    parser.add_argument("--losses", nargs="+", default=["info_nce", "sigmoid"], choices=["info_nce", "sigmoid"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true", help="print one JSON object per line instead of a table")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    ctx = mp.get_context("spawn")
    if not args.json:
        print(f"{'loss':<9} {'batch':>6} {'form':<10} {'peak MiB':>9} {'seconds':>8}")
    for loss in args.losses:
        for batch in args.batch_sizes:
            for form, block in (("dense", None), ("blockwise", args.block_size)):
                queue: mp.Queue = ctx.Queue()
                proc = ctx.Process(target=_measure, args=(loss, batch, args.dim, block, args.device, queue))
                proc.start()
                proc.join()
                if proc.exitcode != 0:
                    logger.warning("%s batch %d %s failed (exit code %s)", loss, batch, form, proc.exitcode)
                    continue
                r = queue.get()
                row = {"loss": loss, "batch": batch, "form": form, "dim": args.dim, "block_size": block,
                       "device": args.device, "peak_mib": r["peak_bytes"] / 2**20, "seconds": r["seconds"]}  # fmt: skip
                if args.json:
                    print(json.dumps(row))
                else:
                    print(f"{loss:<9} {batch:>6} {form:<10} {row['peak_mib']:>9.1f} {row['seconds']:>8.2f}")
                sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
