"""PyTorch CPU side of bench/backbones.ts: the official ViG-T and a plain-PyTorch DeiT-T, same configurations,
random weights, eval, no_grad, float32, batch 1, one image per call. Median wall time of N calls after one warm-up.

ViG-T is hustvl/ViG's `vig.py` ViG class as released (from official_backbones/vig/, never committed), loaded the
way tests/_oracles/backbone_fixtures.py loads it: the fla fork's Triton modules are replaced by PyTorch versions.
Here its GLA is a chunked PyTorch GLA instead of the oracle's per-token recurrence (the same maths as the fork's
chunk kernel: parallel within a chunk, recurrent across chunks); the script checks it against the per-token
recurrence on a small input first and prints the max error. Eval takes the official bidirectional path
(`bid_fused_recurrent_gla`): both directions run as one batch-2 chunked scan.

DeiT-T (timm is not installed here) is the standard ViT-Ti written out below: 16x16 patches, class token, learned
position table (bicubic-resized from 14x14 for other sizes), 12 pre-norm blocks of softmax attention (3 heads)
and a 4x GELU MLP, LayerNorm eps 1e-6, 1000 classes.

  /usr/bin/python3 bench/pytorch/backbones_cpu.py [--sizes 224,512,1024] [--repeat 3] [--threads 2] [--chunk 16]

OMP_WAIT_POLICY defaults to PASSIVE here (see below); run with OMP_WAIT_POLICY=ACTIVE for libgomp's default.

Prints one JSON line, then a markdown table. A size whose warm-up call takes longer than --max-call-s
(60 s) is reported from that single call, and the larger sizes of that model are skipped.
"""
import argparse
import json
import os
import statistics
import sys
import time

# libgomp's default spin-waiting makes a 2-thread forward 10-30x slower on a 2-core machine with other load (threads
# spin for cores someone else holds); it reads the variable when torch loads it. OMP_WAIT_POLICY=ACTIVE restores it.
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, os.path.join(ROOT, 'tests', '_oracles'))


def gla_chunked(q, k, v, g, scale, C=16):
    """GLA over [B, H, T, d]: inside a chunk all pairs at once (decay exp(G_i - G_j) per key channel), across
    chunks the [dk, dv] state; every exponent is <= 0, so nothing overflows. T need not divide by C."""
    B, H, T, Dk = q.shape
    S = q.new_zeros(B, H, Dk, v.shape[-1])
    out = torch.empty(B, H, T, v.shape[-1], dtype=q.dtype, device=q.device)
    full = torch.tril(torch.ones(C, C, dtype=torch.bool, device=q.device))
    q = q * scale
    for c in range(0, T, C):
        Q, K, V = q[:, :, c:c + C], k[:, :, c:c + C], v[:, :, c:c + C]
        n = Q.shape[2]
        mask = full[:n, :n]
        G = g[:, :, c:c + C].cumsum(2)
        D = (G[:, :, :, None, :] - G[:, :, None, :, :]).masked_fill(~mask[None, None, :, :, None], float('-inf'))
        out[:, :, c:c + n] = (Q[:, :, :, None, :] * K[:, :, None, :, :] * D.exp()).sum(-1) @ V + (Q * G.exp()) @ S
        last = G[:, :, -1:]
        S = last.exp().transpose(2, 3) * S + (K * (last - G).exp()).transpose(2, 3) @ V
    return out


def make_chunked_bid(C):
    def bid(q, k, v, gk, gv=None, scale=None, **_):
        # same contract as the fork's merged kernel: forward-scan gates in the first B rows, backward in the last B
        B = q.shape[0]
        scale = q.shape[-1] ** -0.5 if scale in (None, -1) else scale
        qq, kk, vv = (torch.cat([t, t.flip(2)], 0) for t in (q, k, v))
        gg = torch.cat([gk[:B], gk[B:].flip(2)], 0)
        o = gla_chunked(qq, kk, vv, gg, scale, C)
        return (o[:B] + o[B:].flip(2)) / 2, None
    return bid


def check_chunked(naive_bid, C):
    """Chunked vs the parity oracle's per-token recurrence, float64, T not a multiple of the chunk."""
    g = torch.Generator().manual_seed(0)
    B, H, T, K, V = 1, 3, 100, 32, 64
    q, k = (torch.randn(B, H, T, K, generator=g, dtype=torch.float64) for _ in range(2))
    v = torch.randn(B, H, T, V, generator=g, dtype=torch.float64)
    gk = F.logsigmoid(torch.randn(2 * B, H, T, K, generator=g, dtype=torch.float64) * 3) / 16
    ref, _ = naive_bid(q, k, v, gk)
    got, _ = make_chunked_bid(C)(q, k, v, gk)
    return float((got - ref).abs().max()), float((got - ref).abs().max() / ref.abs().max())


def check_model(model, vig, naive_bid, C):
    """The whole ViG-T in float32 at 96² (36 tokens), chunked vs per-token GLA: shows the swap is what runs.
    Also the GLA output's RMS in the first block, which must stand well above g_norm's eps for the check to mean anything."""
    x = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(2))
    outs = []
    chunked = make_chunked_bid(C)

    def spy(*a, **k):
        o = chunked(*a, **k)
        outs.append(float(o[0].pow(2).mean().sqrt()))
        return o
    vig.bid_fused_recurrent_gla = spy
    got = model(x)
    vig.bid_fused_recurrent_gla = naive_bid
    try:
        ref = model(x)
    finally:
        vig.bid_fused_recurrent_gla = chunked
    return float((got - ref).abs().max() / ref.abs().max()), outs[0] / 2  # eval divides the merged output by 2 again


# ViG-T as in the official yaml/config.py (see ../shared/specs/architectures.md §1.1)
VIG_T = dict(img_size=224, patch_size=16, stride=16, depth=12, num_heads=3, embed_dim=192, num_classes=1000,
             if_cls_token=False, classification_mode='avgpool', use_out_act=True, use_out_gate=False,
             use_swiglu=True, use_act_in_conv=True, drop_path_rate=0.0, expand_k=0.5, expand_v=1.0,
             patch_embed_version='v2', attn_model='fused_chunk')


def randomize_vig_t(model):
    """Random weights as in the parity fixtures, then q, k, v 100x larger: at the official init's scale the GLA
    output is ~1e-8, far under g_norm's eps (1e-6 on its mean square), so a GLA check on the whole model would see
    no GLA at all; speed does not depend on the values."""
    from backbone_fixtures import perturb
    perturb(torch, model, 0)
    for blk in model.blocks:
        blk.attn.in_proj[0].weight.mul_(10)
        blk.attn.qkv_proj.weight.mul_(10)
    return model


def build_vig_t(chunk):
    from backbone_fixtures import OFFICIAL, torch_setup
    torch_setup()
    fuse = sys.modules['fla.ops.gla.recurrent_fuse']
    naive_bid = fuse.bid_fused_recurrent_gla
    fuse.bid_fused_recurrent_gla = make_chunked_bid(chunk)
    sys.path.insert(0, os.path.join(OFFICIAL, 'vig'))
    import vig
    model = randomize_vig_t(vig.ViG(**VIG_T))
    return model.eval(), vig, naive_bid


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        if hasattr(F, 'scaled_dot_product_attention'):
            o = F.scaled_dot_product_attention(q, k, v)
        else:  # torch < 2.0
            o = ((q @ k.transpose(-2, -1)) * self.scale).softmax(-1) @ v
        return self.proj(o.transpose(1, 2).reshape(B, N, C))


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class DeiT(nn.Module):
    def __init__(self, dim=192, depth=12, heads=3, patch=16, img=224, classes=1000):
        super().__init__()
        self.grid = img // patch
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, self.grid ** 2 + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch_embed(x)
        h, w = x.shape[2:]
        x = x.flatten(2).transpose(1, 2)
        pos = self.pos_embed[:, 1:]
        if (h, w) != (self.grid, self.grid):
            pos = pos.reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
            pos = F.interpolate(pos, size=(h, w), mode='bicubic', align_corners=False).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token + self.pos_embed[:, :1], x + pos], 1)
        return self.head(self.norm(self.blocks(x))[:, 0])


def tokens(name, size):
    if name == 'vig_t':  # V2 patch embed: conv k9 s8 p1, then conv k3 s2 p1
        return ((size - 7) // 8 // 2 + 1) ** 2
    return (size // 16) ** 2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--sizes', default='224,512,1024')
    ap.add_argument('--repeat', type=int, default=3)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--chunk', type=int, default=16)
    ap.add_argument('--max-call-s', type=float, default=60.0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    load_start = os.getloadavg()
    vig_model, vig, naive_bid = build_vig_t(args.chunk)
    torch.set_grad_enabled(False)
    abs_err, rel_err = check_chunked(naive_bid, args.chunk)
    model_rel, gla_rms = check_model(vig_model, vig, naive_bid, args.chunk)
    print(f'chunked GLA (chunk {args.chunk}) vs per-token recurrence, float64, T=100: max abs {abs_err:.2e}, max rel {rel_err:.2e}; '
          f'whole ViG-T float32 at 96²: max rel {model_rel:.2e} (block-0 GLA output RMS {gla_rms:.1e})', file=sys.stderr)
    models = {'vig_t': vig_model, 'deit_t': DeiT().eval()}
    rows = []
    for name, model in models.items():
        params = sum(p.numel() for p in model.parameters())
        too_slow = None  # the first size whose warm-up call took longer than --max-call-s
        for size in map(int, args.sizes.split(',')):
            n = tokens(name, size)
            if too_slow:
                rows.append({'model': name, 'size': size, 'tokens': n, 'medianMs': None, 'skipped': f'one call at {too_slow}² took > {args.max_call_s:.0f} s'})
                continue
            x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
            t0 = time.perf_counter()
            y = model(x)
            warm = time.perf_counter() - t0
            assert y.shape == (1, 1000) and torch.isfinite(y).all(), f'{name} {size}: bad output'
            times = [warm]
            if warm > args.max_call_s:
                too_slow = size
            else:
                times = []
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    model(x)
                    times.append(time.perf_counter() - t0)
            med = statistics.median(times)
            rows.append({'model': name, 'params': params, 'size': size, 'tokens': n, 'medianMs': round(med * 1000, 1), 'calls': len(times), 'timesMs': [round(t * 1000, 1) for t in times]})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(json.dumps({'torch': torch.__version__, 'threads': torch.get_num_threads(), 'ompWaitPolicy': os.environ['OMP_WAIT_POLICY'], 'chunk': args.chunk,
                      'glaCheck': {'maxAbs': abs_err, 'maxRel': rel_err, 'vigT96MaxRel': model_rel, 'vigT96GlaRms': gla_rms},
                      'loadavgStart': load_start, 'loadavgEnd': os.getloadavg(), 'rows': rows}))
    print('\n| model | params | input | tokens | median ms / image (PyTorch CPU) |\n|---|---|---|---|---|')
    for r in rows:
        ms = r['medianMs'] if r['medianMs'] is not None else f"skipped ({r['skipped']})"
        p = f"{r['params'] / 1e6:.2f}M" if 'params' in r else '-'
        print(f"| {r['model']} | {p} | {r['size']}² | {r['tokens']} | {ms} |")


if __name__ == '__main__':
    main()
