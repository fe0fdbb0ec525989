"""PyTorch baseline for examples/bench.rs: DiffCLIP / CLIP ViT-B/16 encoders written from the
spec (../shared/spec/diffclip-reference.md), random weights, float32, eval mode.

    python3 benches/pytorch/diffclip_reference.py --device cuda --batch 8 --text-batch 32 --iters 10

Prints one JSON line per model with images_per_s and texts_per_s (medians), like bench.rs.
"""
import argparse
import json
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class DiffAttention(nn.Module):
    def __init__(self, dim, heads, lambda_init=0.8, causal=False):
        super().__init__()
        self.h, self.hd, self.causal, self.lambda_init = heads, dim // heads, causal, lambda_init
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(dim, dim) for _ in range(4))
        self.lambdas = nn.Parameter(torch.randn(4, self.hd) * 0.1)
        self.diff_norm = nn.RMSNorm(2 * self.hd, eps=1e-5)

    def forward(self, x):
        b, n, d = x.shape
        q = self.q_proj(x).view(b, n, self.h // 2, 2, self.hd).permute(0, 2, 3, 1, 4)
        k = self.k_proj(x).view(b, n, self.h // 2, 2, self.hd).permute(0, 2, 3, 1, 4)
        v = self.v_proj(x).view(b, n, self.h // 2, 2 * self.hd).transpose(1, 2)
        # Two flash-attention calls (one per map of the pair), each with the pair's shared value
        # head of width 2 * head_dim: the same result as subtracting the two maps before V.
        o1 = F.scaled_dot_product_attention(q[:, :, 0], k[:, :, 0], v, is_causal=self.causal)
        o2 = F.scaled_dot_product_attention(q[:, :, 1], k[:, :, 1], v, is_causal=self.causal)
        lq1, lk1, lq2, lk2 = self.lambdas
        lam = torch.exp((lq1 * lk1).sum()) - torch.exp((lq2 * lk2).sum()) + self.lambda_init
        o = self.diff_norm(o1 - lam * o2) * (1 - self.lambda_init)
        return self.out_proj(o.transpose(1, 2).reshape(b, n, d))


class StdAttention(nn.Module):
    def __init__(self, dim, heads, causal=False):
        super().__init__()
        self.h, self.causal = heads, causal
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x):
        b, n, d = x.shape
        split = lambda t: t.view(b, n, self.h, d // self.h).transpose(1, 2)
        o = F.scaled_dot_product_attention(split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x)), is_causal=self.causal)
        return self.out_proj(o.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    def __init__(self, dim, heads, diff, causal, quick_gelu):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-5), nn.LayerNorm(dim, eps=1e-5)
        self.attn = DiffAttention(dim, heads, causal=causal) if diff else StdAttention(dim, heads, causal)
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.quick = quick_gelu

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        h = self.fc1(self.norm2(x))
        h = h * torch.sigmoid(1.702 * h) if self.quick else F.gelu(h)
        return x + self.fc2(h)


class Clip(nn.Module):
    def __init__(self, diff):
        super().__init__()
        self.patch = nn.Conv2d(3, 768, 16, 16)
        self.cls = nn.Parameter(torch.zeros(1, 1, 768))
        self.pos = nn.Parameter(torch.randn(1, 197, 768) * 0.02)
        self.vblocks = nn.ModuleList(Block(768, 12, diff, False, False) for _ in range(12))
        self.vnorm = nn.LayerNorm(768, eps=1e-5)
        self.image_projection = nn.Parameter(torch.randn(768, 512) / math.sqrt(768))
        self.tok = nn.Embedding(49408, 512)
        self.tpos = nn.Parameter(torch.randn(77, 512) * 0.01)
        self.tblocks = nn.ModuleList(Block(512, 8, diff, True, True) for _ in range(12))
        self.ln_final = nn.LayerNorm(512, eps=1e-5)
        self.text_projection = nn.Parameter(torch.randn(512, 512) / math.sqrt(512))

    def encode_image(self, img):
        x = self.patch(img).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        for b in self.vblocks:
            x = b(x)
        return self.vnorm(x)[:, 0] @ self.image_projection

    def encode_text(self, ids):
        x = self.tok(ids) + self.tpos
        for b in self.tblocks:
            x = b(x)
        x = self.ln_final(x)
        return x[torch.arange(x.shape[0]), ids.argmax(-1)] @ self.text_projection


def timed(fn, device, warmup, iters):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--text-batch", type=int, default=32)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    a = p.parse_args()
    device = torch.device(a.device)
    torch.manual_seed(0)
    for name, diff in [("diffclip_vit_b16", True), ("clip_vit_b16", False)]:
        model = Clip(diff).to(device).eval()
        img = torch.randn(a.batch, 3, 224, 224, device=device)
        ids = torch.randint(1, 49406, (a.text_batch, 77), device=device)
        ids[:, 0], ids[:, 20] = 49406, 49407
        with torch.inference_mode():
            ti = timed(lambda: model.encode_image(img), device, a.warmup, a.iters)
            tt = timed(lambda: model.encode_text(ids), device, a.warmup, a.iters)
        print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "preset": name, "device": str(device),
                          "batch": a.batch, "text_batch": a.text_batch, "images_per_s": a.batch / ti,
                          "texts_per_s": a.text_batch / tt, "image_median_s": ti, "text_median_s": tt,
                          "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    main()
