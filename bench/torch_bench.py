"""PyTorch CPU timings for normkit's benchmark (bench/run.ts runs this when torch is importable).

Reads a JSON list of cases from stdin: {"method", "shape", "groups"?}; for each thread count given in argv[1]
(comma separated) times forward and forward+backward (gradients of x, weight and bias with a given upstream
gradient) and prints JSON: median, min, max milliseconds of `runs` runs after warm-up.
"""
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def timed(fn, runs, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return {"median": statistics.median(times), "min": min(times), "max": max(times), "runs": runs}


def forward_fn(case):
    method = case["method"]
    shape = case["shape"]
    c = shape[-1]
    if method in ("layerNorm", "rmsNorm"):
        x = torch.randn(*shape)
        w = torch.randn(c)
        b = torch.randn(c)
        if method == "layerNorm":
            return x, [w, b], lambda x, w, b: F.layer_norm(x, (c,), w, b, 1e-5)
        if hasattr(F, "rms_norm"):
            return x, [w], lambda x, w: F.rms_norm(x, (c,), w, 1e-6)
        return x, [w], lambda x, w: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w
    # Channels-last [N, H, W, C] as in tfjs; PyTorch's kernels want channels first, so the input is a
    # channels_last-strided NCHW tensor (the same memory as NHWC).
    n, h, wd, _ = shape
    x = torch.randn(n, c, h, wd).contiguous(memory_format=torch.channels_last)
    w = torch.randn(c)
    b = torch.randn(c)
    if method == "batchNorm":
        rm = torch.zeros(c)
        rv = torch.ones(c)
        return x, [w, b], lambda x, w, b: F.batch_norm(x, rm, rv, w, b, True, 0.1, 1e-3)
    if method == "groupNorm":
        g = case.get("groups", 32)
        return x, [w, b], lambda x, w, b: F.group_norm(x, g, w, b, 1e-5)
    if method == "instanceNorm":
        return x, [w, b], lambda x, w, b: F.instance_norm(x, None, None, w, b, True, 0.1, 1e-5)
    raise ValueError(method)


def main():
    threads = [int(t) for t in sys.argv[1].split(",")]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 11
    cases = json.load(sys.stdin)
    out = []
    for t in threads:
        torch.set_num_threads(t)
        for case in cases:
            x, params, f = forward_fn(case)
            with torch.no_grad():
                fwd = timed(lambda: f(x, *params), runs, 3)
            xg = x.clone().requires_grad_(True)
            pg = [p.clone().requires_grad_(True) for p in params]
            dy = torch.randn_like(x)

            def step():
                y = f(xg, *pg)
                torch.autograd.grad(y, [xg, *pg], dy)

            fb = timed(step, runs, 3)
            out.append({"method": case["method"], "shape": case["shape"], "threads": t, "forward": fwd, "forwardBackward": fb})
    json.dump({"torch": torch.__version__, "results": out}, sys.stdout)


if __name__ == "__main__":
    main()
