"""PyTorch GPU side of bench/backbones.ts: the official ViG-T and the plain-PyTorch DeiT-T of backbones_cpu.py, on
CUDA, random weights, eval, no_grad, batch 1, float32 (TF32 off) and with --bf16 also bfloat16. Per size: median
ms per image over --repeat calls after --warm-up calls, timed with CUDA events; the host wall time of a call up to
the logits read back (as bench/backbones.ts times ours); peak `torch.cuda.max_memory_allocated` during the timed
calls (weights and input included; the peak statistics are reset after the warm-up of each size, so Triton's
autotuning buffers do not count). The first call of each size is timed on its own: Triton compiles and autotunes
there (and torch.compile compiles there with --compile).

ViG-T is hustvl/ViG's `vig.py` ViG class as released (from official_backbones/vig/, never committed), loaded as
backbones_cpu.py loads it, with the ViG-T config from there. In eval its GLA is the fork's merged bidirectional
kernel `bid_fused_recurrent_gla` (whatever `attn_model` says; 'fused_chunk' is only the training path). Which
implementation runs behind that call (--gla):
  fork   the fork's Triton kernel as released (a per-token recurrence, both directions in one kernel)
  fla    fla's maintained Triton `chunk_gla` (official/fla, imported as kernels.py imports it): both directions as
         one batch-2 call, the backward one on the flipped sequence, merged as the fork merges them
  torch  backbones_cpu.py's chunked GLA in torch ops (float32 inside)
--gla auto (default) takes the first of fork, fla, torch that loads and passes its check; a list (fork,fla)
times each that does. The fork's fused RMSNorm (Triton) and SwiGLU-linear (CUDA jiterator) run where they load
and pass their checks, else their torch maths from tests/_oracles/backbone_fixtures.py. Every chosen piece is
checked first: the GLA against the per-token recurrence (float64, T=100) in each timed dtype, the norm and SwiGLU
against their torch maths, and the whole ViG-T at 96² (float32) against the same model with the recurrence and
the torch maths; a path whose check fails is not timed. The path of every row is printed.

  python3 bench/pytorch/backbones_gpu.py [--sizes 224,512,1024,2048] [--repeat 20] [--warm-up 3] [--gla auto]
                                         [--bf16] [--compile] [--tf32] [--device cuda|cpu] [--max-s 480] [--out FILE]

--device cpu runs the same code without Triton (torch GLA, torch norms; wall times, no peak): a smoke test.
Triton's cache goes to .scratch/triton and inductor's to .scratch/inductor (ignored by git) unless
TRITON_CACHE_DIR / TORCHINDUCTOR_CACHE_DIR are set: a second run on the same machine skips the compiles.
Prints progress to stderr, then one JSON line and a markdown table on stdout.
"""
import argparse
import copy
import gc
import importlib.util
import json
import os
import re
import statistics
import sys
import time
import traceback
import types

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
os.environ.setdefault('TRITON_CACHE_DIR', os.path.join(ROOT, '.scratch', 'triton'))
os.environ.setdefault('TORCHINDUCTOR_CACHE_DIR', os.path.join(ROOT, '.scratch', 'inductor'))
# as the parity oracle runs the fork's Triton kernels on Triton 3.6 (tests/_oracles/backbone_fixtures.py --triton-check)
os.environ.setdefault('TRITON_ALLOW_NON_CONSTEXPR_GLOBALS', '1')
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no __pycache__ beside the committed scripts

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from backbones_cpu import DeiT, VIG_T, make_chunked_bid, randomize_vig_t, tokens  # noqa: E402

# transformers (which vig.py imports) probes for an installed package named `kernels` by importing it: with this
# folder on the path, that import would run bench/pytorch/kernels.py (another benchmark) and fail inside it
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

GLA_ORDER = ('fork', 'fla', 'torch')
GLA_LABEL = {'fork': 'fork Triton bid_fused_recurrent_gla (as released)', 'fla': 'fla chunk_gla x2 (Triton)',
             'torch': 'torch chunked GLA (chunk 16)'}
PIECE_LABEL = {'fork': 'fork (Triton / jiterator)', 'torch': 'torch maths'}
TOL = {torch.float32: 1e-2, torch.bfloat16: 5e-2}  # fla's tl.dot rounds fp32 through TF32 (~1e-3); a wrong swap is O(1)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def short_error(e):
    return f'{type(e).__name__}: {e}'.split('\n')[0][:300]


# ---------------------------------------------------------------- what the official modules call

OPS = types.SimpleNamespace(gla=None, norm=None, swiglu_linear=None)


def install_switches(vig, ref_norm_cls):
    """vig.py calls RMSNorm, swiglu_linear and bid_fused_recurrent_gla through its module globals: route them
    through OPS so that one model runs any implementation."""
    class RMSNorm(ref_norm_cls):
        def forward(self, x, residual=None, prenorm=False, residual_in_fp32=False):
            return OPS.norm(self, x, residual, prenorm, residual_in_fp32)
    vig.RMSNorm = RMSNorm
    vig.bid_fused_recurrent_gla = lambda *a, **k: OPS.gla(*a, **k)
    vig.swiglu_linear = lambda *a: OPS.swiglu_linear(*a)


def load_fork(official):
    """The fork's own modules, file by file (its package __init__s import the whole 2024 fla): the merged
    bidirectional GLA and the fused RMSNorm (Triton), SwiGLU-linear (CUDA jiterator). Returns {name: fn or error}."""
    fork = os.path.join(official, 'vig', 'fla')

    def load(name, rel):
        spec = importlib.util.spec_from_file_location(name, os.path.join(fork, rel))
        m = importlib.util.module_from_spec(spec)
        sys.modules[name] = m
        spec.loader.exec_module(m)
        return m
    out = {}
    try:
        import triton  # noqa: F401
        load('fla.ops.utils', 'ops/utils.py')  # recurrent_fuse imports `contiguous` from it
    except Exception as e:
        return {k: short_error(e) for k in ('gla', 'norm', 'swiglu')}
    for key, name, rel, attr in (('gla', 'vig_fork_recurrent_fuse', 'ops/gla/recurrent_fuse.py', 'bid_fused_recurrent_gla'),
                                 ('norm', 'vig_fork_rmsnorm', 'modules/rmsnorm.py', 'rms_norm_fn'),
                                 ('swiglu', 'vig_fork_activations', 'modules/activations.py', 'swiglu_linear')):
        try:
            out[key] = getattr(load(name, rel), attr)
        except Exception as e:
            out[key] = short_error(e)
    return out


def load_fla():
    """fla's maintained chunk_gla from official/fla, as kernels.py imports it. The fork also calls itself `fla`: its
    modules are taken out of sys.modules first (vig.py and the fork's functions keep their own references), and
    the maintained package stays registered, since it imports some of its modules lazily on the first call."""
    for name in [n for n in sys.modules if n == 'fla' or n.startswith('fla.')]:
        del sys.modules[name]
    base = os.path.join(ROOT, 'official', 'fla')
    for name, path in (('fla', base), ('fla.ops', os.path.join(base, 'ops'))):
        m = types.ModuleType(name)
        m.__path__ = [path]
        sys.modules[name] = m
    sys.modules['fla'].__version__ = re.search(r'__version__ = "([^"]+)"', open(os.path.join(base, '__init__.py')).read()).group(1)
    from fla.ops.gla.chunk import chunk_gla
    return chunk_gla


def make_fla_bid(chunk_gla):
    def bid(q, k, v, gk, gv=None, scale=None, **_):
        # the fork's contract: q, k, v [B, H, T, d]; forward-scan gates in gk's first B rows, backward in the last B
        # (in token order); returns the mean of both directions. fla's layout is [B, T, H, d].
        B = q.shape[0]
        scale = q.shape[-1] ** -0.5 if scale in (None, -1) else scale
        qq, kk, vv = (torch.cat([t, t.flip(2)], 0).transpose(1, 2).contiguous() for t in (q, k, v))
        gg = torch.cat([gk[:B], gk[B:].flip(2)], 0).transpose(1, 2).float().contiguous()
        o = chunk_gla(qq, kk, vv, gg, scale=scale)[0].transpose(1, 2)
        return (o[:B] + o[B:].flip(2)) / 2, None
    return bid


def make_torch_bid(chunk=16):
    chunked = make_chunked_bid(chunk)

    def bid(q, k, v, gk, gv=None, scale=None, **_):
        # float32 inside: cumulated log-gates and their exponentials lose too much in bf16
        o, _ = chunked(q.float(), k.float(), v.float(), gk.float(), scale=scale)
        return o.to(q.dtype), None
    return bid


def fork_norm(rms_norm_fn):
    return lambda m, x, r, p, f: rms_norm_fn(x, m.weight, m.bias, residual=r, prenorm=p, residual_in_fp32=f, eps=m.eps)


# ---------------------------------------------------------------- checks

def rel_err(got, ref):
    got, ref = got.double().cpu(), ref.double().cpu()
    return float((got - ref).abs().max() / ref.abs().max())


def check_gla(bid, naive_bid, device, dtype):
    """Against the per-token recurrence in float64, ViG-T's head sizes, T not a multiple of any chunk."""
    g = torch.Generator().manual_seed(0)
    B, H, T, K, V = 1, 3, 100, 32, 64
    q, k = (torch.randn(B, H, T, K, generator=g, dtype=torch.float64) for _ in range(2))
    v = torch.randn(B, H, T, V, generator=g, dtype=torch.float64)
    gk = F.logsigmoid(torch.randn(2 * B, H, T, K, generator=g, dtype=torch.float64) * 3) / 16
    ref, _ = naive_bid(q, k, v, gk)
    got, _ = bid(*(t.to(device, dtype) for t in (q, k, v, gk)))
    return rel_err(got, ref)


def check_norm(norm, ref_norm_cls, device, dtype):
    """With and without the residual the blocks pass (prenorm: also the sum)."""
    g = torch.Generator().manual_seed(3)
    x, r = torch.randn(2, 37, 64, generator=g), torch.randn(2, 37, 64, generator=g)
    m = ref_norm_cls(64, eps=1e-5)
    m.weight.data = 1 + 0.2 * torch.randn(64, generator=g)
    m64 = copy.deepcopy(m).double()
    ref_y, ref_s = ref_norm_cls.forward(m64, x.double(), r.double(), True)
    ref_plain = ref_norm_cls.forward(m64, x.double())
    m = m.to(device, dtype)
    x, r = x.to(device, dtype), r.to(device, dtype)
    y, s = norm(m, x, r, True, False)
    return max(rel_err(y, ref_y), rel_err(s, ref_s), rel_err(norm(m, x, None, False, False), ref_plain))


def check_swiglu(fn, ref_fn, device, dtype):
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(37, 128, generator=g), torch.randn(37, 128, generator=g)
    w = torch.randn(48, 128, generator=g) * 0.1
    ref = ref_fn(a.double(), b.double(), w.double(), None)
    return rel_err(fn(*(t.to(device, dtype) for t in (a, b, w)), None), ref)


def check_model(model, ref_ops, device):
    """The whole ViG-T at 96² (36 tokens), float32: the chosen pieces against the recurrence and torch maths. Also
    the RMS of block 0's GLA output, which must stand well above g_norm's eps for the check to mean anything."""
    x = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(2)).to(device)
    chosen = types.SimpleNamespace(**vars(OPS))
    rms = []
    gla = chosen.gla

    def spy(*a, **k):
        o = gla(*a, **k)
        rms.append(float(o[0].float().pow(2).mean().sqrt()))
        return o
    OPS.gla = spy
    got = model(x)
    OPS.__dict__.update(vars(ref_ops))
    try:
        ref = model(x)
    finally:
        OPS.__dict__.update(vars(chosen))
    return rel_err(got, ref), rms[0] / 2  # eval halves the merged output once more


# ---------------------------------------------------------------- timing

def sync(device):
    if device == 'cuda':
        torch.cuda.synchronize()


def time_model(model, x, repeat, warm, device):
    t0 = time.perf_counter()
    y = model(x)
    sync(device)
    first = (time.perf_counter() - t0) * 1000
    assert y.shape == (1, 1000) and torch.isfinite(y.float()).all(), 'bad output'
    for _ in range(warm - 1):
        model(x)
    sync(device)
    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    ev, wall = [], []
    for _ in range(repeat):
        if device == 'cuda':
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            t0 = time.perf_counter()
            a.record()
            y = model(x)
            b.record()
            y.float().cpu()
            wall.append((time.perf_counter() - t0) * 1000)
            torch.cuda.synchronize()
            ev.append(a.elapsed_time(b))
        else:
            t0 = time.perf_counter()
            model(x).float().cpu()
            wall.append((time.perf_counter() - t0) * 1000)
    peak = torch.cuda.max_memory_allocated() / 2 ** 20 if device == 'cuda' else None
    ms = statistics.median(ev) if ev else statistics.median(wall)
    return {'medianMs': round(ms, 3), 'wallMs': round(statistics.median(wall), 3), 'firstCallMs': round(first, 1),
            'peakMiB': None if peak is None else round(peak, 1), 'calls': repeat}


def free(device):
    gc.collect()
    if device == 'cuda':
        torch.cuda.empty_cache()


# ---------------------------------------------------------------- main

def build(args, device):
    """The official ViG-T with every implementation that loads; returns the model (CPU, float32), the candidate
    GLA / norm / SwiGLU implementations (or why not) and the reference maths."""
    from backbone_fixtures import OFFICIAL, torch_setup
    torch_setup()  # package shells for the fork: no Triton module is imported yet
    ref = types.SimpleNamespace(gla=sys.modules['fla.ops.gla.recurrent_fuse'].bid_fused_recurrent_gla,
                                norm=None, swiglu_linear=sys.modules['fla.modules.activations'].swiglu_linear)
    ref_norm_cls = sys.modules['fla.modules'].RMSNorm
    ref.norm = lambda m, x, r, p, f: ref_norm_cls.forward(m, x, r, p, f)
    cand = {'gla': {'torch': make_torch_bid()}, 'norm': {'torch': ref.norm}, 'swiglu': {'torch': ref.swiglu_linear}}
    why = {}
    if device != 'cuda':
        why = {'fork': 'device is not CUDA (Triton kernels)', 'fla': 'device is not CUDA (Triton kernels)'}
    else:
        fork = load_fork(OFFICIAL)
        for key in ('gla', 'norm', 'swiglu'):
            if callable(fork[key]):
                cand[key]['fork'] = fork[key] if key != 'norm' else fork_norm(fork[key])
            else:
                why['fork' if key == 'gla' else f'fork {key}'] = fork[key]
    sys.path.insert(0, os.path.join(OFFICIAL, 'vig'))
    import vig
    install_switches(vig, ref_norm_cls)
    torch.manual_seed(0)
    model = randomize_vig_t(vig.ViG(**VIG_T)).eval()
    return model, cand, why, ref, ref_norm_cls


def choose(args, device, dtypes, model, cand, why, ref, ref_norm_cls):
    """Checks every candidate that will be needed; returns the GLA paths to time and the checks' numbers."""
    checks = {}

    def passes(kind, name, fn):
        errs = {}
        try:
            for dt in dtypes:
                if kind == 'gla':
                    errs[dt] = check_gla(fn, ref.gla, device, dt)
                elif kind == 'norm':
                    errs[dt] = check_norm(fn, ref_norm_cls, device, dt)
                else:
                    errs[dt] = check_swiglu(fn, ref.swiglu_linear, device, dt)
                sync(device)
        except Exception as e:
            traceback.print_exc(file=sys.stderr)
            why[name if kind == 'gla' else f'{name} {kind}'] = short_error(e)
            return False
        checks[f'{kind} {name}'] = {str(d).split('.')[-1]: e for d, e in errs.items()}
        bad = {str(d).split('.')[-1]: e for d, e in errs.items() if not e <= TOL[d]}
        log(f'check {kind} {name}: max rel error ' + ', '.join(f'{d} {e:.2e}' for d, e in checks[f'{kind} {name}'].items()))
        if bad:
            why[name if kind == 'gla' else f'{name} {kind}'] = f'check failed: max rel error {bad}'
        return not bad

    for kind in ('norm', 'swiglu'):
        name = 'fork' if 'fork' in cand[kind] and passes(kind, 'fork', cand[kind]['fork']) else 'torch'
        setattr(OPS, 'norm' if kind == 'norm' else 'swiglu_linear', cand[kind][name])
        cand[kind]['chosen'] = name
    paths = []
    wanted = GLA_ORDER if args.gla == 'auto' else args.gla.split(',')
    model = model.to(device)
    for name in wanted:
        if name == 'fla' and device == 'cuda':  # imported only when needed: it takes the name `fla` from the fork
            try:
                cand['gla']['fla'] = make_fla_bid(load_fla())
            except Exception as e:
                traceback.print_exc(file=sys.stderr)
                why['fla'] = short_error(e)
        if name not in cand['gla']:
            why.setdefault(name, 'not loaded')
            log(f'GLA path {name}: unavailable ({why[name]})')
            continue
        t0 = time.perf_counter()
        if not passes('gla', name, cand['gla'][name]):
            log(f'GLA path {name}: not used ({why[name]})')
            continue
        OPS.gla = cand['gla'][name]
        try:
            err, rms = check_model(model, types.SimpleNamespace(gla=ref.gla, norm=ref.norm, swiglu_linear=ref.swiglu_linear), device)
        except Exception as e:
            traceback.print_exc(file=sys.stderr)
            why[name] = f'whole-model check: {short_error(e)}'
            continue
        checks[f'vig_t 96² {name}'] = {'maxRel': err, 'glaRms': rms, 'seconds': round(time.perf_counter() - t0, 1)}
        log(f'check whole ViG-T at 96², float32, GLA {name} + norm {cand["norm"]["chosen"]} + swiglu {cand["swiglu"]["chosen"]} '
            f'vs recurrence + torch maths: max rel {err:.2e} (block-0 GLA output RMS {rms:.1e}); checks took {time.perf_counter() - t0:.1f} s '
            '(Triton compiles included)')
        if not err <= TOL[torch.float32]:
            why[name] = f'whole-model check failed: max rel {err:.2e}'
            continue
        paths.append(name)
        if args.gla == 'auto':
            break
    model.cpu()
    return paths, checks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--sizes', default='224,512,1024,2048')
    ap.add_argument('--repeat', type=int, default=20)
    ap.add_argument('--warm-up', type=int, default=3)
    ap.add_argument('--gla', default='auto', help='auto, or a list of fork,fla,torch')
    ap.add_argument('--models', default='vig_t,deit_t')
    ap.add_argument('--bf16', action='store_true', help='also time every row in bfloat16')
    ap.add_argument('--compile', action='store_true', help='also time torch.compile(model) rows')
    ap.add_argument('--tf32', action='store_true', help='allow TF32 in cuBLAS/cuDNN float32 (off: ours computes in fp32)')
    ap.add_argument('--device', default='cuda', choices=('cuda', 'cpu'))
    ap.add_argument('--max-s', type=float, default=480.0,
                    help='start no new row after this many seconds from the start (the rest are reported as skipped)')
    ap.add_argument('--out', help='also write the JSON line and the table to this file')
    args = ap.parse_args()
    start = time.perf_counter()
    if args.gla != 'auto' and not set(args.gla.split(',')) <= set(GLA_ORDER):
        ap.error(f'--gla: auto or a list of {",".join(GLA_ORDER)}')
    device = args.device
    if device == 'cuda' and not torch.cuda.is_available():
        ap.error('--device cuda: CUDA is not available here (use --device cpu for a smoke test)')
    if device == 'cuda':
        os.makedirs(os.environ['TRITON_CACHE_DIR'], exist_ok=True)
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        torch.backends.cudnn.allow_tf32 = args.tf32
    dtypes = [torch.float32] + ([torch.bfloat16] if args.bf16 else [])
    sizes = [int(s) for s in args.sizes.split(',')]
    models = args.models.split(',')
    torch.set_grad_enabled(False)

    t0 = time.perf_counter()
    if 'vig_t' in models:
        vig_cpu, cand, why, ref, ref_norm_cls = build(args, device)
        paths, checks = choose(args, device, dtypes, vig_cpu, cand, why, ref, ref_norm_cls)
    else:
        vig_cpu, paths, checks, why = None, [], {}, {}
        cand = {'norm': {'chosen': '-'}, 'swiglu': {'chosen': '-'}}
    setup_s = time.perf_counter() - t0
    norm, swiglu = cand['norm']['chosen'], cand['swiglu']['chosen']
    log(f'setup (imports, checks, their Triton compiles): {setup_s:.1f} s; GLA paths timed: {paths or "none"}; '
        f'RMSNorm: {norm}; SwiGLU-linear: {swiglu}; not used: {why or "-"}')
    if 'vig_t' in models and not paths:
        log('no GLA path passed its check: ViG-T is not timed')
    torch.manual_seed(0)
    deit_cpu = DeiT().eval()

    runs = []  # (model name, path key, label, cpu model, gla)
    if 'vig_t' in models:
        for p in paths:
            runs.append(('vig_t', p, f'GLA: {GLA_LABEL[p]}; RMSNorm: {PIECE_LABEL[norm]}; SwiGLU: {PIECE_LABEL[swiglu]}', vig_cpu, p))
    if 'deit_t' in models:
        sdpa = hasattr(F, 'scaled_dot_product_attention')  # torch >= 2.0
        runs.append(('deit_t', 'sdpa' if sdpa else 'softmax', 'SDPA attention' if sdpa else 'softmax(QKᵀ)V attention', deit_cpu, None))
    if args.compile:
        runs += [(n, k + '+compile', lab + ', torch.compile', m, g) for n, k, lab, m, g in list(runs) if n == 'deit_t' or k == (paths[0] if paths else None)]

    rows = []
    for dt in dtypes:
        dname = str(dt).split('.')[-1]
        for name, key, label, cpu_model, gla in runs:
            model = copy.deepcopy(cpu_model).to(device, dt)
            params = sum(p.numel() for p in model.parameters())
            weights_mib = sum(p.numel() * p.element_size() for p in model.parameters()) / 2 ** 20
            if gla:
                OPS.gla = cand['gla'][gla]
            compile_error = None
            if key.endswith('+compile'):
                try:
                    torch._dynamo.reset()
                    model = torch.compile(model, dynamic=False)  # compiles at each size's first call
                except Exception as e:
                    compile_error = f'torch.compile: {short_error(e)}'
            for size in sizes:
                row = {'model': name, 'path': key, 'pathLabel': label, 'dtype': dname, 'size': size, 'tokens': tokens(name, size),
                       'params': params, 'weightsMiB': round(weights_mib, 1)}
                late = time.perf_counter() - start > args.max_s
                if compile_error or late:
                    rows.append({**row, 'error': compile_error or f'skipped: past --max-s {args.max_s:.0f} s'})
                    log(json.dumps(rows[-1]))
                    continue
                free(device)
                x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1)).to(device, dt)
                try:
                    row.update(time_model(model, x, args.repeat, args.warm_up, device))
                except Exception as e:
                    traceback.print_exc(file=sys.stderr)
                    row['error'] = short_error(e)
                del x
                rows.append(row)
                log(json.dumps(row))
            del model
            free(device)

    info = {'torch': torch.__version__, 'device': torch.cuda.get_device_name() if device == 'cuda' else 'cpu',
            'tf32': args.tf32 if device == 'cuda' else None, 'setupS': round(setup_s, 1), 'glaPaths': paths,
            'rmsNorm': norm, 'swigluLinear': swiglu, 'notUsed': why, 'checks': checks,
            'timing': 'CUDA events, median' if device == 'cuda' else 'wall, median', 'repeat': args.repeat, 'warmUp': args.warm_up,
            'tritonCacheDir': os.environ['TRITON_CACHE_DIR']}
    try:
        import triton
        info['triton'] = triton.__version__
    except ImportError:
        info['triton'] = None
    if 'fla' in paths:
        info['fla'] = sys.modules['fla'].__version__
    info['totalS'] = round(time.perf_counter() - start, 1)
    ms_col = 'ms / image (CUDA events)' if device == 'cuda' else 'ms / image (wall)'
    lines = [json.dumps({**info, 'rows': rows}), '',
             f'| model | path | dtype | input | tokens | {ms_col} | wall ms incl. read-back | first call ms | peak MiB |',
             '|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        if 'error' in r:
            lines.append(f"| {r['model']} | {r['pathLabel']} | {r['dtype']} | {r['size']}² | {r['tokens']} | {'' if r['error'].startswith('skipped') else 'failed: '}{r['error']} | | | |")
        else:
            lines.append(f"| {r['model']} | {r['pathLabel']} | {r['dtype']} | {r['size']}² | {r['tokens']} | {r['medianMs']} | {r['wallMs']} | "
                         f"{r['firstCallMs']} | {r['peakMiB'] if r['peakMiB'] is not None else '-'} |")
    print('\n'.join(lines))
    if args.out:
        with open(args.out, 'w') as f:
            f.write('\n'.join(lines) + '\n')


if __name__ == '__main__':
    main()
