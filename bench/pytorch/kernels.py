"""PyTorch side of bench/gpu_kernels.ts, same GPU and shapes, one process:
cuDNN depthwise 3x3 (channels_last), fla's Triton chunk_gla both directions (fp32 and bf16) and a chunked GLA
in torch ops, the DLA linear attention in torch ops, MAXIM's block partition (permute + contiguous), torch
matmul fp32 (TF32 off) and bf16. Medians of CUDA-event timings after warm-up; peak = torch.cuda.max_memory_allocated
during one call (inputs included). fla is imported from its source tree (`official/`, not ours, not committed).
Also fla's chunk_gla backward (both directions, given dy): forward+backward minus forward, with gradients recorded.
Usage: python3 bench/pytorch/kernels.py [--no-fla | --fla-only] > out.json"""
import json, re, statistics, sys, time, types
import torch

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
dev = 'cuda'
rows = []


def bench(fn, repeat=20, warm=3):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(repeat):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); fn(); b.record(); torch.cuda.synchronize()
        ts.append(a.elapsed_time(b))
    torch.cuda.reset_peak_memory_stats()
    fn(); torch.cuda.synchronize()
    return statistics.median(ts), torch.cuda.max_memory_allocated() / 2**20


def add(op, shape, impl, fn, flops, **kw):
    try:
        ms, mem = bench(fn, **kw)
        rows.append({'op': op, 'shape': shape, 'impl': impl, 'medianMs': ms, 'peakMiB': round(mem, 1), 'gflops': flops / ms / 1e6 if flops else None})
    except Exception as e:  # one failing baseline must not lose the others
        rows.append({'op': op, 'shape': shape, 'impl': impl, 'error': f'{type(e).__name__}: {e}'[:300]})
    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)


def gla_chunked(q, k, v, g, scale, C=16):
    B, H, T, Dk = q.shape
    S = q.new_zeros(B, H, Dk, v.shape[-1])
    out = torch.empty(B, H, T, v.shape[-1], device=q.device, dtype=q.dtype)
    mask = torch.tril(torch.ones(C, C, device=q.device, dtype=torch.bool))
    q = q * scale
    for c in range(0, T, C):
        Q, K, V = q[:, :, c:c + C], k[:, :, c:c + C], v[:, :, c:c + C]
        G = g[:, :, c:c + C].cumsum(2)
        D = (G[:, :, :, None, :] - G[:, :, None, :, :]).masked_fill(~mask[None, None, :, :, None], float('-inf'))
        out[:, :, c:c + C] = (Q[:, :, :, None, :] * K[:, :, None, :, :] * D.exp()).sum(-1) @ V + (Q * G.exp()) @ S
        last = G[:, :, -1:]
        S = last.exp().transpose(2, 3) * S + (K * (last - G).exp()).transpose(2, 3) @ V
    return out


def gla_backward(chunk_gla, a, r, gf, gb, s, shape, label, flops):
    """fla's chunk_gla backward for both directions, given dy: (forward + backward) minus forward, both timed with
    gradients recorded (the forward then saves what its backward needs)."""
    with torch.enable_grad():
        la = [t.detach().clone().requires_grad_() for t in (*a, gf)]
        lr = [t.detach().clone().requires_grad_() for t in (*r, gb)]
        dy = torch.randn_like(la[2])
        def fwd():
            return chunk_gla(*la, scale=s)[0], chunk_gla(*lr, scale=s)[0]
        def fwd_bwd():
            for t in la + lr:
                t.grad = None
            o1, o2 = fwd()
            torch.autograd.backward([o1, o2], [dy, dy])
        impl = f'fla Triton chunk_gla x2 directions {label}'
        add('BiGLA forward+backward', shape, impl, fwd_bwd, 3 * flops)
        both = rows[-1]
        add('BiGLA forward (grad recorded)', shape, impl, fwd, flops)
        fw = rows[-1]
        if 'medianMs' in both and 'medianMs' in fw:
            ms = both['medianMs'] - fw['medianMs']
            rows.append({'op': 'BiGLA backward', 'shape': shape, 'impl': f'{impl} backward (fwd+bwd minus fwd)', 'medianMs': ms,
                         'peakMiB': both['peakMiB'], 'gflops': 2 * flops / ms / 1e6 if ms > 0 else None})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)


with torch.no_grad():
    H, W, C = 256, 256, 192
    x = torch.randn(1, C, H, W, device=dev).contiguous(memory_format=torch.channels_last)
    w, b = torch.randn(C, 1, 3, 3, device=dev), torch.randn(C, device=dev)
    fla_only = '--fla-only' in sys.argv
    if not fla_only: add('depthwise3x3+bias', f'1x{H}x{W}x{C}', 'PyTorch cuDNN fp32 (channels_last)', lambda: torch.nn.functional.conv2d(x, w, b, padding=1, groups=C), 2 * 9 * H * W * C)
    del x

    B, Hh, N, Dk, Dv = 1, 3, 65536, 32, 64
    shape = f'B{B} H{Hh} N{N} dk{Dk} dv{Dv}'
    flops = 12 * B * Hh * N * Dk * Dv
    q, k = torch.randn(B, Hh, N, Dk, device=dev), torch.randn(B, Hh, N, Dk, device=dev)
    v = torch.randn(B, Hh, N, Dv, device=dev)
    gf, gb = -torch.rand(B, Hh, N, Dk, device=dev) * 0.1, -torch.rand(B, Hh, N, Dk, device=dev) * 0.1
    s = Dk ** -0.5
    if not fla_only: add('BiGLA forward', shape, 'PyTorch chunked GLA in torch ops (chunk 16, Python loop)',
        lambda: (gla_chunked(q, k, v, gf, s) + gla_chunked(q.flip(2), k.flip(2), v.flip(2), gb.flip(2), s).flip(2)) / 2, flops, repeat=2, warm=1)

    if '--no-fla' not in sys.argv:
        t0 = time.time()
        for name, path in (('fla', 'official/fla'), ('fla.ops', 'official/fla/ops')):
            m = types.ModuleType(name); m.__path__ = [path]; sys.modules[name] = m  # skip the package __init__s
        sys.modules['fla'].__version__ = re.search(r'__version__ = "([^"]+)"', open('official/fla/__init__.py').read()).group(1)
        from fla.ops.gla.chunk import chunk_gla
        # fla's layout is [B, T, H, D]; the backward direction runs on the flipped sequence
        qt, kt, vt, gft, gbt = (t.transpose(1, 2).contiguous() for t in (q, k, v, gf, gb))
        qr, kr, vr, gbr = (t.flip(1).contiguous() for t in (qt, kt, vt, gbt))
        for dt, label in ((torch.float32, 'fp32'), (torch.bfloat16, 'bf16')):
            a = [t.to(dt) for t in (qt, kt, vt)]
            r = [t.to(dt) for t in (qr, kr, vr)]
            add('BiGLA forward', shape, f"fla Triton chunk_gla x2 directions {label} (inputs pre-flipped)",
                lambda: (chunk_gla(*a, gft, scale=s)[0] + chunk_gla(*r, gbr, scale=s)[0].flip(1)) / 2, flops)
            gla_backward(chunk_gla, a, r, gft, gbr, s, shape, label, flops)
        rows.append({'note': f'fla first-call compile+autotune {time.time() - t0:.0f} s'})
        del qt, kt, vt, gft, gbt, qr, kr, vr, gbr
    del q, k, v, gf, gb
    if fla_only:
        print(json.dumps({'torch': torch.__version__, 'device': torch.cuda.get_device_name(), 'rows': rows}))
        sys.exit(0)

    Na, Da = 65536, 64
    qp, kp = torch.rand(1, 3, Na, Da, device=dev) + 0.1, torch.rand(1, 3, Na, Da, device=dev) + 0.1
    qr, kr, v = torch.randn(1, 3, Na, Da, device=dev), torch.randn(1, 3, Na, Da, device=dev), torch.randn(1, 3, Na, Da, device=dev)
    def dla():
        kv = (kr.transpose(2, 3) * Na ** -0.5) @ (v * Na ** -0.5)
        return (qr @ kv) / ((qp * kp.mean(2, keepdim=True)).sum(-1, keepdim=True) + 1e-6)
    add('DLA linear attention', f'B1 H3 N{Na} d{Da}', 'PyTorch torch ops fp32', dla, 2 * 3 * Na * Da * Da * 2 + 4 * 3 * Na * Da)
    del qp, kp, qr, kr, v

    Hm, Cm, f = 256, 128, 8
    xm = torch.randn(1, Hm, Hm, Cm, device=dev)
    add('block partition', f'1x{Hm}x{Hm}x{Cm}, {f}x{f}', 'PyTorch view+permute+contiguous',
        lambda: xm.view(1, Hm // f, f, Hm // f, f, Cm).permute(0, 1, 3, 2, 4, 5).reshape(1, (Hm // f) ** 2, f * f, Cm), 0)
    del xm

    n = 4096
    a, bb = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
    add('matmul fp32', f'{n}^3', 'PyTorch fp32 (TF32 off)', lambda: a @ bb, 2 * n ** 3)
    a16, b16 = a.bfloat16(), bb.bfloat16()
    add('matmul bf16', f'{n}^3', 'PyTorch bf16', lambda: a16 @ b16, 2 * n ** 3)

import triton
print(json.dumps({'torch': torch.__version__, 'triton': triton.__version__, 'device': torch.cuda.get_device_name(), 'rows': rows}))
