"""Issue 11's table from benches/gpu.sh's JSON lines: diffclip against PyTorch CUDA per model,
precision and batch, as speed ratios (above 1: diffclip faster), with the issue's targets.

    python3 benches/gpu_summary.py gpu.jsonl > gpu-summary.md

Runs here, not on the lent machine (it needs no torch): only the .jsonl has to come back.
Pairs: diffclip f32 with PyTorch eager f32 (target >= 1.0); diffclip f16 with PyTorch autocast
bf16 (wgpu has no bf16; target >= 1.0); the ViT-B/16 training step at diffclip f16 against AMP
bf16 (target >= 0.8); differential / standard attention time for one layer (target <= 1.10).
DiffCLIP inference runs both ways (Burn's flash attention, `--gpu-kernel`): both are listed
and the faster one is the one compared.
"""
import json
import sys

TORCH_DTYPE = {"f32": "f32", "f16": "bf16"}  # diffclip precision -> the PyTorch run it faces


def load(path):
    runs, header, failed = [], None, []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"{path}:{number}: not JSON ({e})")
            if "gpu" in row and "run" not in row:
                header = row
            elif "failed" in row or "skipped" in row:
                failed.append(row)
            else:
                runs.append(row)
    return header, runs, failed


def ratio(ours, theirs):
    return f"{ours / theirs:.3g}x" if ours and theirs else "-"


def verdict(value, target, higher_is_better=True):
    if value is None:
        return "not run"
    met = value >= target if higher_is_better else value <= target
    return "met" if met else "missed"


def build(row):
    """diffclip's build from the run's label, `diffclip-<build>-...` (gpu.sh)."""
    return row.get("run", "").split("-")[1]


def inference(runs):
    """(model, diffclip dtype, batch) -> {("flash"|"kernel", build) or "torch": row}."""
    table = {}
    for r in runs:
        if r.get("work") == "train_step" or "images_per_s" not in r:
            continue
        run = r.get("run", "")
        if run.startswith("diffclip-"):
            path = "kernel" if r.get("gpu_kernel") else "flash"
            table.setdefault((r["preset"], r["dtype"], r["batch"]), {})[(path, build(r))] = r
        elif run.startswith("torch-"):
            ours = next((d for d, t in TORCH_DTYPE.items() if t == r["dtype"]), None)
            if ours:
                table.setdefault((r["preset"], ours, r["batch"]), {})["torch"] = r
    return table


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: gpu_summary.py GPU_JSONL")
    header, runs, failed = load(sys.argv[1])
    if header:
        print(f"GPU: {header.get('gpu') or 'none'}; CPU: {header.get('cpu')} ({header.get('cores')} cores); "
              f"torch {header.get('torch')}; {header.get('date')}\n")
    for r in runs:
        if "kernels_match_host" in r:
            print(f"{r['run']}: diffclip's attention kernels match plain Rust on this GPU (values 1e-4, gradients 1e-3)\n")
    adapters = sorted({str(r.get("adapter")) for r in runs if r.get("run", "").startswith("diffclip-")})
    if adapters:
        print(f"diffclip's runs were on: {', '.join(adapters)}")
        if any("NVIDIA" not in a for a in adapters):
            print("WARNING: some diffclip runs were not on an NVIDIA adapter (a CPU fallback such as llvmpipe, or a build that names none)")
        print()
    print("| model | diffclip build | precision (diffclip / PyTorch) | batch | work | diffclip flash | diffclip kernel | PyTorch | best / PyTorch | target 1.0 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    fmt = lambda v: f"{v:.4g}" if v else "-"
    for (preset, dtype, batch), sides in sorted(inference(runs).items()):
        torch_row = sides.get("torch", {})
        builds = sorted({b for key in sides if key != "torch" for b in [key[1]]}) or ["-"]
        for b in builds:
            for work, field in [("images/s", "images_per_s"), ("texts/s", "texts_per_s")]:
                flash, kernel = (sides.get((p, b), {}).get(field) for p in ("flash", "kernel"))
                torch = torch_row.get(field)
                best = max((v for v in (flash, kernel) if v), default=None)
                value = best / torch if best and torch else None
                print(f"| {preset} | {b} | {dtype} / {TORCH_DTYPE[dtype]} | {batch} | {work} | {fmt(flash)} | {fmt(kernel)} | "
                      f"{fmt(torch)} | {ratio(best, torch)} | {verdict(value, 1.0)} |")

    print("\n| training step | diffclip build | precision (diffclip / PyTorch) | batch | diffclip ms | PyTorch ms | PyTorch / diffclip time | target |")
    print("|---|---|---|---|---|---|---|---|")
    ours = {(r["model"], r["dtype"], r["batch"], build(r)): r["step_ms_median"] for r in runs
            if r.get("work") == "train_step" and r.get("run", "").startswith("diffclip-")}
    theirs = {(r["model"], r["dtype"], r["batch"]): r["step_median_ms"] for r in runs
              if r.get("work") == "train_step" and r.get("run", "").startswith("torch-")}
    for (model, dtype, batch, b), ms in sorted(ours.items()):
        torch_ms = theirs.get((model, TORCH_DTYPE.get(dtype), batch))
        mixed = "vit_b16" in model and dtype != "f32"
        value = torch_ms / ms if torch_ms else None
        target = f"0.8: {verdict(value, 0.8)}" if mixed else "-"
        print(f"| {model} | {b} | {dtype} / {TORCH_DTYPE.get(dtype)} | {batch} | {ms:.1f} | "
              f"{f'{torch_ms:.1f}' if torch_ms else '-'} | {ratio(torch_ms, ms) if torch_ms else '-'} | {target} |")

    print("\n| attention layer (N, batch) | diffclip build | path | differential ms | standard ms | ratio | target <= 1.10 |")
    print("|---|---|---|---|---|---|---|")
    for r in runs:
        if "diff_ms" in r and "standard_ms" in r:
            path = "forward+backward" if r.get("backward") else ("kernel" if r.get("gpu_kernel") else "flash")
            print(f"| {r['n']}, {r['batch']} | {build(r)} | {path} | {r['diff_ms']:.2f} | {r['standard_ms']:.2f} | "
                  f"{r['ratio']:.2f} | {verdict(r['ratio'], 1.10, higher_is_better=False)} |")
    notes = [r["note"] for r in runs if "note" in r]
    for note in notes:
        print(f"\nNOTE: {note}")
    for r in failed:
        if "skipped" in r:
            print(f"\nSKIPPED {r['run']}: {r['skipped']}")
        else:
            print(f"\nFAILED {r['run']} (exit {r['failed']}): {r.get('error', '').strip()[-200:]}")


if __name__ == "__main__":
    main()
