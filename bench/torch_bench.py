"""PyTorch CPU timings for normkit's benchmark, served to bench/run.ts.

bench/run.ts starts this once as `python3 bench/torch_bench.py --serve` and alternates batches of normkit runs
with batches of PyTorch runs, so the two are timed under the same machine load. One thread
(torch.set_num_threads(1)): tfjs's cpu and wasm backends run on one thread in Node.

Protocol: one JSON request per line on stdin, {"method", "shape", "groups"?, "pass": "forward" |
"forward+backward", "runs", "warmup"}; one JSON answer per line on stdout, {"times": [ms, ...]} (or
{"error": message}). The first line written is {"torch": version}. forward+backward computes the gradients of
x, weight and bias for a given upstream gradient.
"""
import json
import sys
import time

import torch
import torch.nn.functional as F


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
        # PyTorch before 2.4 has no rms_norm: the composite is what a PyTorch user runs there.
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
        g = case.get("groups") or 32
        return x, [w, b], lambda x, w, b: F.group_norm(x, g, w, b, 1e-5)
    if method == "instanceNorm":
        return x, [w, b], lambda x, w, b: F.instance_norm(x, None, None, w, b, True, 0.1, 1e-5)
    raise ValueError(method)


def make_step(case, pass_):
    x, params, f = forward_fn(case)
    if pass_ == "forward":

        def fwd():
            with torch.no_grad():
                f(x, *params)

        return fwd
    xg = x.clone().requires_grad_(True)
    pg = [p.clone().requires_grad_(True) for p in params]
    dy = torch.randn_like(x)

    def step():
        y = f(xg, *pg)
        torch.autograd.grad(y, [xg, *pg], dy)

    return step


def times(fn, runs, warmup):
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def serve():
    torch.set_num_threads(1)
    steps = {}
    print(json.dumps({"torch": torch.__version__}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            key = (req["method"], tuple(req["shape"]), req.get("groups"), req["pass"])
            # The tensors are made once per case and pass, as normkit's side makes its own once; only the
            # current case is kept (the transformer shapes are tens of MB each).
            if key not in steps:
                steps.clear()
                steps[key] = make_step(req, req["pass"])
            answer = {"times": times(steps[key], int(req["runs"]), int(req.get("warmup", 0)))}
        except Exception as e:  # noqa: BLE001 - the error goes back to the bench as text
            answer = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    if sys.argv[1:] != ["--serve"]:
        sys.exit("usage: python3 bench/torch_bench.py --serve (started by bench/run.ts)")
    serve()
