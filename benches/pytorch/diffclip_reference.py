"""PyTorch baseline for examples/bench.rs: DiffCLIP / CLIP ViT-B/16 encoders written from the
spec (../shared/spec/diffclip-reference.md), random weights, float32, eval mode.

    python3 benches/pytorch/diffclip_reference.py --device cuda --batch 8 --text-batch 32 --iters 10

Prints one JSON line per model with images_per_s and texts_per_s (medians), like bench.rs.
With --train: the training step of benches/train_step.rs's small model instead (step_median_ms).
With --open-clip: open_clip's own ViT-B-16 (package open_clip_torch, random weights), the peer
of diffclip's `openclip_vit_b16` preset.
With --dtype bf16|f16: inference under torch.autocast (f32 weights, reduced-precision compute);
with --train, the step under autocast too (mixed precision: f32 master weights and AdamW state,
a GradScaler for f16). --train-model vit_b16 times ViT-B/16's step (224² images) instead of the
small model's.
"""
import contextlib
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
        o = o1 - lam * o2
        # The norm's gain in the activations' type: under autocast they are bf16/f16, and
        # rms_norm only takes its fused kernel when input and weight types match.
        o = F.rms_norm(o, (2 * self.hd,), self.diff_norm.weight.to(o.dtype), self.diff_norm.eps) * (1 - self.lambda_init)
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


# (image size, patch, width, layers, heads) of the vision tower, (width, layers, heads) of the
# text tower, embedding width: ViT-B/16, and benches/train_step.rs's small model.
VIT_B16 = dict(image=(224, 16, 768, 12, 12), text=(512, 12, 8), embed=512)
SMALL = dict(image=(64, 16, 192, 4, 6), text=(128, 3, 4), embed=128)


class Clip(nn.Module):
    def __init__(self, diff, shape=VIT_B16):
        super().__init__()
        size, patch, vw, vl, vh = shape["image"]
        tw, tl, th = shape["text"]
        e = shape["embed"]
        self.patch = nn.Conv2d(3, vw, patch, patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, vw))
        self.pos = nn.Parameter(torch.randn(1, (size // patch) ** 2 + 1, vw) * 0.02)
        self.vblocks = nn.ModuleList(Block(vw, vh, diff, False, False) for _ in range(vl))
        self.vnorm = nn.LayerNorm(vw, eps=1e-5)
        self.image_projection = nn.Parameter(torch.randn(vw, e) / math.sqrt(vw))
        self.tok = nn.Embedding(49408, tw)
        self.tpos = nn.Parameter(torch.randn(77, tw) * 0.01)
        self.tblocks = nn.ModuleList(Block(tw, th, diff, True, True) for _ in range(tl))
        self.ln_final = nn.LayerNorm(tw, eps=1e-5)
        self.text_projection = nn.Parameter(torch.randn(tw, e) / math.sqrt(tw))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

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


def clip_loss(image, text, logit_scale):
    """open_clip's ClipLoss on one device: normalised features, symmetric cross-entropy."""
    image, text = F.normalize(image, dim=-1), F.normalize(text, dim=-1)
    logits = logit_scale * image @ text.T
    labels = torch.arange(image.shape[0], device=image.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


DTYPES = {"f32": None, "bf16": torch.bfloat16, "f16": torch.float16}


def autocast(device, dtype):
    """Reduced-precision compute for `dtype` (bf16/f16), nothing for f32."""
    if DTYPES[dtype] is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[dtype])


def train_step_fn(model, batch, device, dtype="f32", size=64):
    """benches/train_step.rs's step: forward, ClipLoss, backward, clip to norm 1, AdamW
    (diffclip's defaults: betas 0.9/0.98, eps 1e-6, weight decay 0.5 on matrices only); under
    autocast for bf16/f16, with a GradScaler (dynamic loss scaling) for f16."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.5}, {"params": rest, "weight_decay": 0.0}],
                            lr=1e-4, betas=(0.9, 0.98), eps=1e-6)
    img = torch.rand(batch, 3, size, size, device=device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == "f16")
    ids = ((torch.arange(batch * 77, device=device) * 7919) % 49000 + 1).view(batch, 77)
    ids[:, 76] = 49407

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast(device, dtype):
            loss = clip_loss(model.encode_image(img), model.encode_text(ids), model.logit_scale.exp().clamp(max=100))
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(opt)
        scaler.update()
        return loss.item()

    return step


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
    p.add_argument("--train", action="store_true", help="time benches/train_step.rs's training step instead")
    p.add_argument("--open-clip", action="store_true", help="time open_clip's ViT-B-16 (random weights) instead")
    p.add_argument("--dtype", choices=list(DTYPES), default="f32", help="autocast compute precision (weights stay f32)")
    p.add_argument("--train-model", choices=["small", "vit_b16"], default="small", help="the model --train times")
    a = p.parse_args()
    device = torch.device(a.device)
    torch.manual_seed(0)
    if a.train:
        shape = SMALL if a.train_model == "small" else VIT_B16
        for name, diff in [(f"diffclip_{a.train_model}", True), (f"clip_{a.train_model}", False)]:
            model = Clip(diff, shape).to(device).train()
            step = train_step_fn(model, a.batch, device, a.dtype, shape["image"][0])
            t = timed(step, device, a.warmup, a.iters)
            print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "work": "train_step", "model": name,
                              "device": str(device), "dtype": a.dtype, "batch": a.batch, "step_median_ms": t * 1e3,
                              "threads": torch.get_num_threads()}), flush=True)
        return
    if a.open_clip:
        import open_clip  # the open_clip_torch package; create_model without weights needs no network

        models = [("openclip_vit_b16", lambda: open_clip.create_model("ViT-B-16"))]
    else:
        models = [(name, lambda diff=diff: Clip(diff)) for name, diff in [("diffclip_vit_b16", True), ("clip_vit_b16", False)]]
    for name, make in models:
        model = make().to(device).eval()
        img = torch.randn(a.batch, 3, 224, 224, device=device)
        ids = torch.randint(1, 49406, (a.text_batch, 77), device=device)
        ids[:, 0], ids[:, 20] = 49406, 49407
        with torch.inference_mode(), autocast(device, a.dtype):
            ti = timed(lambda: model.encode_image(img), device, a.warmup, a.iters)
            tt = timed(lambda: model.encode_text(ids), device, a.warmup, a.iters)
        print(json.dumps({"impl": "open_clip" if a.open_clip else "pytorch", "torch": torch.__version__, "preset": name, "device": str(device), "dtype": a.dtype,
                          "batch": a.batch, "text_batch": a.text_batch, "images_per_s": a.batch / ti,
                          "texts_per_s": a.text_batch / tt, "image_median_s": ti, "text_median_s": tt,
                          "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    main()
