"""PyTorch side of bench/gpu_kernels.ts on the same GPU and shapes: cuDNN depthwise conv, a chunked GLA
written in torch ops (both directions, chunk 16, the same algorithm as our reference), torch matmul fp32
(TF32 off) and bf16. Medians of CUDA-event timings after warm-up; peak allocated memory per op.
Usage: python3 bench/pytorch/kernels.py > out.json"""
import json, statistics
import torch

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
dev = 'cuda'


def bench(fn, repeat=20, warm=3):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    ts = []
    for _ in range(repeat):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); fn(); b.record(); torch.cuda.synchronize()
        ts.append(a.elapsed_time(b))
    return statistics.median(ts), torch.cuda.max_memory_allocated() / 2**20


def gla_chunked(q, k, v, g, scale, C=16):
    B, H, T, Dk = q.shape
    Dv = v.shape[-1]
    S = q.new_zeros(B, H, Dk, Dv)
    out = torch.empty(B, H, T, Dv, device=q.device, dtype=q.dtype)
    mask = torch.tril(torch.ones(C, C, device=q.device, dtype=torch.bool))
    q = q * scale
    for c in range(0, T, C):
        Q, K, V = q[:, :, c:c + C], k[:, :, c:c + C], v[:, :, c:c + C]
        G = g[:, :, c:c + C].cumsum(2)
        D = G[:, :, :, None, :] - G[:, :, None, :, :]
        D = D.masked_fill(~mask[None, None, :, :, None], float('-inf'))
        A = (Q[:, :, :, None, :] * K[:, :, None, :, :] * D.exp()).sum(-1)
        out[:, :, c:c + C] = A @ V + (Q * G.exp()) @ S
        last = G[:, :, -1:]
        S = last.exp().transpose(2, 3) * S + (K * (last - G).exp()).transpose(2, 3) @ V
    return out


rows = []
with torch.no_grad():
    H, W, C = 256, 256, 192
    x = torch.randn(1, C, H, W, device=dev).contiguous(memory_format=torch.channels_last)
    w = torch.randn(C, 1, 3, 3, device=dev)
    b = torch.randn(C, device=dev)
    ms, mem = bench(lambda: torch.nn.functional.conv2d(x, w, b, padding=1, groups=C))
    rows.append({'op': 'depthwise3x3+bias', 'shape': f'1x{H}x{W}x{C}, 3x3', 'impl': 'PyTorch cuDNN fp32 (channels_last)', 'medianMs': ms, 'peakMiB': mem, 'gflops': 2 * 9 * H * W * C / ms / 1e6})

    B, Hh, N, Dk, Dv = 1, 3, 65536, 32, 64
    q, k = torch.randn(B, Hh, N, Dk, device=dev), torch.randn(B, Hh, N, Dk, device=dev)
    v = torch.randn(B, Hh, N, Dv, device=dev)
    gf, gb = -torch.rand(B, Hh, N, Dk, device=dev) * 0.1, -torch.rand(B, Hh, N, Dk, device=dev) * 0.1
    def bigla():
        f = gla_chunked(q, k, v, gf, 0.1)
        r = gla_chunked(q.flip(2), k.flip(2), v.flip(2), gb.flip(2), 0.1).flip(2)
        return (f + r) / 2
    ms, mem = bench(bigla, repeat=3, warm=1)
    rows.append({'op': 'BiGLA forward', 'shape': f'B{B} H{Hh} N{N} dk{Dk} dv{Dv}', 'impl': 'PyTorch chunked GLA in torch ops (chunk 16, python loop)', 'medianMs': ms, 'peakMiB': mem, 'gflops': 12 * B * Hh * N * Dk * Dv / ms / 1e6})

    n = 4096
    a, bb = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
    ms, mem = bench(lambda: a @ bb)
    rows.append({'op': 'matmul fp32', 'shape': f'{n}^3', 'impl': 'PyTorch fp32 (TF32 off)', 'medianMs': ms, 'peakMiB': mem, 'gflops': 2 * n ** 3 / ms / 1e6})
    a16, b16 = a.bfloat16(), bb.bfloat16()
    ms, mem = bench(lambda: a16 @ b16)
    rows.append({'op': 'matmul bf16', 'shape': f'{n}^3', 'impl': 'PyTorch bf16', 'medianMs': ms, 'peakMiB': mem, 'gflops': 2 * n ** 3 / ms / 1e6})

print(json.dumps({'torch': torch.__version__, 'device': torch.cuda.get_device_name(), 'rows': rows}))
