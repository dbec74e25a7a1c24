"""PyTorch CPU training steps of the bench's models (bench/models.ts runs this when torch is importable).

The same architectures and shapes as normkit's buildTransformerLM (Pre-LN, d 256, 4 heads, 4 layers, MLP 4d with
GELU, learned positions, biases, final norm, T 128, B 16, vocabulary 256) and buildCNN (conv3x3 32 -> norm ->
ReLU, two residual stages [32, 64] of one basic block, the second strided with a 1x1 projection + norm, global
average pool, dense 10; convolutions without bias; input 32x32x16, batch 32), each with its normalization
(LayerNorm eps 1e-5 / BatchNorm in training) and with an identity in its place. One step = forward, backward
and an Adam update, on torch.set_num_threads(1). Prints JSON: median, min, max ms of `runs` steps after one
warm-up step, per model and variant.
"""
import json
import statistics
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from torch_bench import times


class Block(nn.Module):
    def __init__(self, d, heads, norm):
        super().__init__()
        self.heads = heads
        self.n1 = norm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.n2 = norm(d)
        self.fc1 = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.n1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / (d // self.heads) ** 0.5
        att = att.masked_fill(torch.triu(torch.ones(t, t, dtype=torch.bool), 1), float("-inf")).softmax(-1)
        x = x + self.proj((att @ v).transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.n2(x))))


class TransformerLM(nn.Module):
    def __init__(self, norm, vocab=256, seq=128, d=256, heads=4, layers=4):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(seq, d) * 0.02)
        self.blocks = nn.ModuleList(Block(d, heads, norm) for _ in range(layers))
        self.final = norm(d)
        self.head = nn.Linear(d, vocab)

    def forward(self, tokens):
        x = self.tok(tokens) + self.pos[: tokens.shape[1]]
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.final(x))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride, norm):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.n1 = norm(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.n2 = norm(cout)
        self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), norm(cout)) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x):
        h = self.n2(self.c2(F.relu(self.n1(self.c1(x)))))
        return F.relu(h + self.short(x))


class CNN(nn.Module):
    def __init__(self, norm, cin=16, widths=(32, 64), classes=10):
        super().__init__()
        self.stem = nn.Conv2d(cin, widths[0], 3, 1, 1, bias=False)
        self.n0 = norm(widths[0])
        blocks, c = [], widths[0]
        for i, w in enumerate(widths):
            blocks.append(BasicBlock(c, w, 2 if i > 0 else 1, norm))
            c = w
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(c, classes)

    def forward(self, x):
        x = self.blocks(F.relu(self.n0(self.stem(x))))
        return self.head(x.mean(dim=(2, 3)))


def identity(_channels):
    return nn.Identity()


def time_steps(model, batch, loss_fn, runs):
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(batch)).backward()
        opt.step()

    t = times(step, runs, 1)
    return {"median": statistics.median(t), "min": min(t), "max": max(t), "runs": runs}


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    torch.set_num_threads(1)
    torch.manual_seed(1)
    tokens = torch.randint(0, 256, (16, 128))
    targets = torch.randint(0, 256, (16, 128))
    # Channels-last memory, as tfjs's NHWC tensors.
    images = torch.randn(32, 16, 32, 32).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (32,))
    out = []
    for name, variant, norm in [("transformer", "LayerNorm", nn.LayerNorm), ("transformer", "identity", identity)]:
        model = TransformerLM(norm)
        out.append({"model": name, "variant": variant, "timing": time_steps(model, tokens, lambda z: F.cross_entropy(z.reshape(-1, 256), targets.reshape(-1)), runs)})
    for name, variant, norm in [("cnn", "BatchNorm2d", nn.BatchNorm2d), ("cnn", "identity", identity)]:
        model = CNN(norm).to(memory_format=torch.channels_last)
        out.append({"model": name, "variant": variant, "timing": time_steps(model, images, lambda z: F.cross_entropy(z, labels), runs)})
    json.dump({"torch": torch.__version__, "results": out}, sys.stdout)


if __name__ == "__main__":
    main()
