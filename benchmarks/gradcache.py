"""Peak memory against batch size, with and without the gradient cache, and the cached step's time relative to the
plain step. One InfoNCE training step of all-MiniLM-L6-v2 on docstring→function pairs of the standard library,
both sides cut at ``--tokens`` tokens (padded to exactly that length, so every batch size sees the same shapes).

    python benchmarks/gradcache.py [--batch-sizes 32 64 128 256] [--chunk 32] [--tokens 64] [--device cpu|cuda]
    python benchmarks/gradcache.py --device cuda --batch-sizes 4096 16384 65536 --chunk 1024 --block-size 4096

Each configuration runs in a fresh child process (so the peak resident set size, ``ru_maxrss``, is its own; on
CUDA the peak is ``torch.cuda.max_memory_allocated``): one warm-up step, then ``--steps`` timed steps, median
reported. ``--block-size`` makes the loss blockwise, so the batch × batch score matrix is never materialised (needed
at batch 65,536, where it alone is 17 GB in fp32).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def child(batch: int, chunk: int | None, tokens: int, device: str, steps: int, block_size: int | None,
          dtype: str) -> dict:
    import resource

    import torch

    import gpte
    from gpte.data.stdlib import code_search_pairs
    from gpte.shared.gradcache import Tower, cached_step, plain_step
    from gpte.shared.losses import info_nce

    enc = gpte.load("minilm", device=device, dtype=torch.float32)
    enc.configure(max_length=tokens)
    enc.train()
    pairs, _ = code_search_pairs()
    while len(pairs) < batch:
        pairs = pairs + pairs
    pairs = pairs[:batch]

    def tokens_of(texts: list[str]) -> dict[str, torch.Tensor]:
        out = enc.tokenize(texts)
        ids, mask = out["input_ids"], out["attention_mask"]
        pad = tokens - ids.shape[1]  # pad to exactly `tokens` so batch sizes are comparable
        if pad > 0:
            ids = torch.nn.functional.pad(ids, (0, pad), value=enc._tokens.pad_id)
            mask = torch.nn.functional.pad(mask, (0, pad), value=0)
        return {"input_ids": ids.to(device), "attention_mask": mask.to(device),
                "prompt_lengths": out["prompt_lengths"].to(device)}

    towers = {"q": Tower(lambda b: enc(**b), tokens_of([p["query"] for p in pairs])),
              "d": Tower(lambda b: enc(**b), tokens_of([p["positive"] for p in pairs]))}
    log_scale = torch.nn.Parameter(torch.tensor(3.0, device=device))
    params = [p for p in enc.parameters()] + [log_scale]
    opt = torch.optim.AdamW(params, lr=1e-5)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if dtype == "bf16" else None

    def loss_fn(reps: dict[str, torch.Tensor]) -> torch.Tensor:
        return info_nce(reps["q"], reps["d"], scale=log_scale.exp(), block_size=block_size)

    times = []
    for i in range(steps + 1):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        if chunk:
            cached_step(loss_fn, towers, chunk, autocast=autocast)
        else:
            plain_step(loss_fn, towers, autocast=autocast)
        opt.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t0)
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda")
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"batch": batch, "chunk": chunk, "step_s": statistics.median(times), "peak_mib": round(peak, 1),
            "pairs_per_s": round(batch / statistics.median(times), 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64, 128, 256])
    ap.add_argument("--chunk", type=int, default=32, help="gradient-cache sub-batch")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--block-size", type=int, default=None, help="blockwise loss block (None: dense)")
    ap.add_argument("--only-cached", action="store_true", help="skip the plain step (batches that cannot fit)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(child(**spec)))
        return 0
    rows = []
    for batch in args.batch_sizes:
        for chunk in ([args.chunk] if args.only_cached else [None, args.chunk]):
            spec = {"batch": batch, "chunk": chunk, "tokens": args.tokens, "device": args.device,
                    "steps": args.steps, "block_size": args.block_size, "dtype": args.dtype}
            proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True,
                                  text=True)
            if proc.returncode != 0:
                rows.append({"batch": batch, "chunk": chunk, "error": proc.stderr.strip().splitlines()[-1]})
            else:
                rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            if args.json:
                print(json.dumps(rows[-1]), flush=True)
    if not args.json:
        print(f"device {args.device}, {args.tokens} tokens per side, chunk {args.chunk}, median of {args.steps} steps")
        print(f"{'batch':>7} {'mode':<10} {'peak MiB':>9} {'step s':>8} {'pairs/s':>8} {'cached/plain':>12}")
        for row in rows:
            mode = f"cache {row['chunk']}" if row.get("chunk") else "plain"
            if "error" in row:
                print(f"{row['batch']:>7} {mode:<10} failed: {row['error']}")
                continue
            plain = next((r for r in rows if r["batch"] == row["batch"] and not r.get("chunk") and "error" not in r),
                         None)
            ratio = f"{row['step_s'] / plain['step_s']:.2f}x" if row.get("chunk") and plain else ""
            print(f"{row['batch']:>7} {mode:<10} {row['peak_mib']:>9.0f} {row['step_s']:>8.2f} {row['pairs_per_s']:>8.1f}"
                  f" {ratio:>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
