"""Image-embedding throughput of an open_clip model: gpte's OpenCLIPEmbedder against open_clip used directly.

    python benchmarks/openclip_images.py [--arch ViT-B-32] [--n 64] [--batch-size 32] [--repeats 3] [--device cpu]

Both sides use the same weights (a random model: speed does not depend on the values; gpte loads them from a
temporary .safetensors file), the same process and the same JPEG files (``--n`` generated photos of 640x480, written
to a temporary folder). Each run goes from file to normalised embedding: decode, preprocess (open_clip's eval
transform), encode in batches of ``--batch-size``. gpte decodes through :func:`gpte.unimodal.image_io.load_image`
(EXIF orientation, mode conversion, size bound); the open_clip side does ``Image.open(path).convert("RGB")``. Runs
alternate (open_clip, gpte, open_clip, ...) after a one-batch warm-up; the script writes the median images/s of each,
the ratio gpte / open_clip and the per-row cosine agreement of the two embeddings.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

logger = logging.getLogger("benchmarks.openclip_images")


def _write_photos(folder: Path, n: int, width: int, height: int) -> list[Path]:
    """``n`` JPEGs with smooth gradients, shapes and sensor-like noise (so decoding costs what a photo costs)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    paths = []
    for i in range(n):
        base = rng.uniform(0, 255, 3) * (xx / width)[..., None] + rng.uniform(0, 255, 3) * (yy / height)[..., None]
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(30, 200)
        base[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.uniform(0, 255, 3)
        pixels = np.clip(base / 2 + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        path = folder / f"photo-{i:03d}.jpg"
        Image.fromarray(pixels, mode="RGB").save(path, quality=90)
        paths.append(path)
    return paths


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="ViT-B-32", help="open_clip architecture")
    parser.add_argument("--n", type=int, default=64, help="number of images")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--json", action="store_true", help="write one JSON object instead of a table")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logger.setLevel(logging.INFO)

    import numpy as np
    import open_clip
    import torch
    from PIL import Image
    from safetensors.torch import save_file

    from gpte.multimodal.openclip import OpenCLIPEmbedder

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    with tempfile.TemporaryDirectory(prefix="gpte-openclip-bench-") as tmp:
        folder = Path(tmp)
        paths = _write_photos(folder, args.n, args.width, args.height)
        torch.manual_seed(0)
        peer, _, peer_preprocess = open_clip.create_model_and_transforms(args.arch, pretrained=None, device=device)
        peer.eval()
        save_file({k: v.detach().cpu().contiguous() for k, v in peer.state_dict().items()},
                  str(folder / "weights.safetensors"))
        ours = OpenCLIPEmbedder.from_checkpoint(args.arch, folder / "weights.safetensors", device=device)

        def run_ours(items: list[Path]) -> np.ndarray:
            return ours.encode_image(items, batch_size=args.batch_size)

        @torch.inference_mode()
        def run_peer(items: list[Path]) -> np.ndarray:
            parts = []
            for start in range(0, len(items), args.batch_size):
                batch = [peer_preprocess(Image.open(p).convert("RGB")) for p in items[start:start + args.batch_size]]
                parts.append(peer.encode_image(torch.stack(batch).to(device), normalize=True).float().cpu())
            return torch.cat(parts).numpy()

        run_peer(paths[: args.batch_size]), run_ours(paths[: args.batch_size])  # warm-up
        rates: dict[str, list[float]] = {"open_clip": [], "gpte": []}
        out: dict[str, np.ndarray] = {}
        for _ in range(args.repeats):
            for name, fn in (("open_clip", run_peer), ("gpte", run_ours)):
                _sync(device)
                t0 = time.perf_counter()
                out[name] = fn(paths)
                _sync(device)
                rates[name].append(len(paths) / (time.perf_counter() - t0))
                logger.info("%-9s %.2f images/s", name, rates[name][-1])

    a, b = out["gpte"].astype(np.float32), out["open_clip"].astype(np.float32)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    med = {k: statistics.median(v) for k, v in rates.items()}
    result = {
        "device": torch.cuda.get_device_name() if device == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "arch": args.arch,
        "images": len(paths),
        "image_size": f"{args.width}x{args.height} JPEG",
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "images_per_s": {k: round(v, 2) for k, v in med.items()},
        "all_runs": {k: [round(x, 2) for x in v] for k, v in rates.items()},
        "ratio_gpte_over_open_clip": round(med["gpte"] / med["open_clip"], 3),
        "cosine_min": float(cos.min()),
    }
    if args.json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        lines = [f"{result['arch']} on {result['device']}: {len(paths)} {result['image_size']} images, batch "
                 f"{args.batch_size}, median of {args.repeats} runs (decode + preprocess + encode)"]
        lines += [f"  {name:<24} {rate:10.2f} images/s" for name, rate in med.items()]
        lines.append(f"  ratio gpte / open_clip   {result['ratio_gpte_over_open_clip']:10.3f}")
        lines.append(f"  per-row cosine           min {result['cosine_min']:.6f}")
        sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
