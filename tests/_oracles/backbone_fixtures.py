"""Parity fixtures for the backbones, produced by the official implementations.

Run on the GPU host from the repository root, with the official sources copied into official_backbones/
(never committed):
  official_backbones/vig/{vig.py, vig_h.py, fla/}     hustvl/ViG classification/models + its flash-linear-attention fork
  official_backbones/maxim/maxim.py                   google-research/maxim maxim/models/maxim.py
  official_backbones/activator/{activator.py, activator_only_GEGLU.py}   Abdullah-88/Activator
  official_backbones/her_seg/SAM/           xq141839/HER-Seg SAM/ (LGViT, ecm_decoder, transformer, prompt_encoder, common, ...)
  official_backbones/pylib/einops                     einops (pure Python), for hosts without it

  python3 tests/_oracles/backbone_fixtures.py OUT_DIR [--only NAME_PREFIX]

For each reduced-depth configuration it builds the official model with random weights, saves them in the
official checkpoint format (.pth state dict for PyTorch models, Flax .npz with the opt/target/ prefix for
MAXIM), and writes <name>.io.safetensors with the NHWC input, the official outputs and a few
intermediates. Outputs are computed in float64 from the float32 weights, so they are the exact answer
for the stored weights.

ViG: the official modules are used as released. The fork's Triton kernels (GLA scans, fused RMSNorm,
fused SwiGLU-linear) are swapped for plain PyTorch versions of the same maths written here (a naive
per-token recurrence for GLA), because they need CUDA and the oracle runs in float64 on the CPU. With
--triton-check (run separately, on CUDA) the fork's real Triton GLA kernels are compared with that
recurrence and the difference is printed.

HER-Seg: `her_seg_mini` composes the official LGViT, neck, PromptEncoder and MaskDecoder exactly as
MHRMedSeg.forward does (model.py itself imports cv2/sam2 training helpers). It needs only PyTorch (Debian's
python3-torch is enough; it runs on the CPU in float64) and, for LGViT's import line, timm's DropPath,
to_2tuple and trunc_normal_ (from timm, or from a stand-in in official_backbones/pylib/timm where timm is absent).
"""
import importlib
import importlib.util
import json
import os
import struct
import subprocess
import sys
import traceback
import types

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
OFFICIAL = os.path.join(ROOT, 'official_backbones')
sys.path.insert(0, os.path.join(OFFICIAL, 'pylib'))


def write_safetensors(path, tensors, meta=None):
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        a = np.ascontiguousarray(np.asarray(arr, dtype=np.float32))
        b = a.tobytes()
        header[name] = {'dtype': 'F32', 'shape': list(a.shape), 'data_offsets': [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if meta:
        header['__metadata__'] = {k: str(v) for k, v in meta.items()}
    h = json.dumps(header).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def module(name, **attrs):
    m = types.ModuleType(name)
    for k, v in attrs.items():
        setattr(m, k, v)
    sys.modules[name] = m
    return m


def have(name):
    try:
        importlib.import_module(name)
        return True
    except Exception:
        return False


# ---------------------------------------------------------------- PyTorch side: shared helpers

def torch_setup():
    import torch
    import torch.nn as nn
    torch.set_grad_enabled(False)

    def naive_gla(q, k, v, g, scale=None, initial_state=None, output_final_state=False, reverse=False, **_):
        B, H, T, K = q.shape
        scale = K ** -0.5 if scale in (None, -1) else scale
        S = q.new_zeros(B, H, K, v.shape[-1])
        o = q.new_zeros(B, H, T, v.shape[-1])
        for t in (range(T - 1, -1, -1) if reverse else range(T)):
            S = S * g[:, :, t].exp()[..., None] + k[:, :, t, :, None] * v[:, :, t, None, :]
            o[:, :, t] = torch.einsum('bhk,bhkv->bhv', q[:, :, t] * scale, S)
        return o, None

    def naive_bid(q, k, v, gk, gv=None, scale=None, **_):
        # the fork's merged kernel: gates of the forward scan in the first B rows, backward in the last B
        B = q.shape[0]
        of, _ = naive_gla(q, k, v, gk[:B], scale)
        ob, _ = naive_gla(q, k, v, gk[B:], scale, reverse=True)
        return (of + ob) / 2, None

    def pad(x, chunk_size=16):
        T = x.shape[-2]
        padded = (T + chunk_size - 1) // chunk_size * chunk_size
        return x if padded == T else torch.nn.functional.pad(x, (0, 0, 0, padded - T))

    class RMSNorm(nn.Module):
        def __init__(self, hidden_size, eps=1e-5):
            super().__init__()
            self.eps = eps
            self.weight = nn.Parameter(torch.ones(hidden_size))
            self.register_parameter('bias', None)

        def forward(self, x, residual=None, prenorm=False, residual_in_fp32=False):
            if residual is not None:
                x = x + residual
            y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight
            return (y, x) if prenorm else y

    def swiglu(x, y):
        return torch.nn.functional.silu(x) * y

    def swiglu_linear(x, y, weight, bias):
        return torch.nn.functional.linear(swiglu(x, y), weight, bias)

    class Unused(nn.Module):
        def __init__(self, *a, **k):
            super().__init__()

    class FusedChunkGLAFunction:
        @staticmethod
        def apply(q, k, v, g, scale, initial_state, output_final_state):
            return naive_gla(q, k, v, g, scale)

    # fla fork: package shells so that no Triton module is imported
    fla_dir = os.path.join(OFFICIAL, 'vig', 'fla')
    module('fla', __path__=[fla_dir])
    spec = importlib.util.spec_from_file_location('fla_configuration_gla', os.path.join(fla_dir, 'models', 'gla', 'configuration_gla.py'))
    if not have('transformers.configuration_utils'):
        class PretrainedConfig:
            def __init__(self, **kwargs):
                for k2, v2 in kwargs.items():
                    setattr(self, k2, v2)
        module('transformers', __path__=[])
        module('transformers.configuration_utils', PretrainedConfig=PretrainedConfig)
        acts = {'swish': nn.SiLU(), 'silu': nn.SiLU(), 'gelu': nn.GELU(), 'relu': nn.ReLU(), 'sigmoid': nn.Sigmoid()}
        module('transformers.activations', ACT2FN=acts)
    cfg_mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cfg_mod)
    module('fla.models', GLAConfig=cfg_mod.GLAConfig)
    module('fla.modules', RMSNorm=RMSNorm, FusedRMSNormSwishGate=Unused)
    module('fla.modules.activations', swiglu=swiglu, swiglu_linear=swiglu_linear)
    module('fla.modules.rotary', RotaryEmbedding=Unused)
    module('fla.ops', __path__=[])
    module('fla.ops.gla', __path__=[], chunk_gla=naive_gla, fused_chunk_gla=naive_gla, fused_recurrent_gla=naive_gla)
    module('fla.ops.gla.chunk_fuse', FusedChunkGLAFunction=FusedChunkGLAFunction, pad=pad)
    module('fla.ops.gla.recurrent_fuse', bid_fused_recurrent_gla=naive_bid)
    module('causal_conv1d', __path__=[])
    module('causal_conv1d.causal_conv1d_interface', CausalConv1dFn=Unused)
    if not (have('timm.models.layers') and have('timm.models.vision_transformer') and have('timm.models.registry')):
        class DropPath(nn.Module):
            def __init__(self, p=0.0):
                super().__init__()
                self.p = p

            def forward(self, x):
                return x

        def to_2tuple(x):
            return tuple(x) if isinstance(x, (tuple, list)) else (x, x)

        module('timm', __path__=[])
        module('timm.models', __path__=[])
        module('timm.models.layers', DropPath=DropPath, to_2tuple=to_2tuple, trunc_normal_=nn.init.trunc_normal_)
        module('timm.models.vision_transformer', VisionTransformer=Unused, _cfg=lambda **k: k, Attention=Unused)
        module('timm.models.registry', register_model=lambda f: f)
    if not have('fvcore.nn'):
        module('fvcore', __path__=[])
        module('fvcore.nn', FlopCountAnalysis=None, flop_count_str=None, flop_count=None, parameter_count=None)
    if not have('torchvision.models'):
        module('torchvision', __path__=[])
        module('torchvision.models', VisionTransformer=Unused)
    return torch, naive_gla


def perturb(torch, model, seed, gate_bias_scale=2.0):
    """Random weights that exercise everything: norms away from 1, biases away from 0, gates spread out."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        noise = torch.randn(p.shape, generator=g, dtype=p.dtype)
        if name.endswith('weight') and p.ndim == 1:  # every 1-D weight is a norm's scale
            p.copy_(1.0 + 0.2 * noise)
        elif name.endswith('bias'):
            p.copy_((gate_bias_scale if 'gk_proj.1' in name else 0.1) * noise)
        else:
            std = p.std().item() if p.numel() > 1 and p.std().item() > 0 else 0.05
            p.add_(0.5 * std * noise)


def amplify_gla(model, factor=10.0):
    """The official init (xavier, gain 2^-2.5) makes the GLA output ~5e-8, which g_norm's eps (1e-6) then
    swamps, and o_proj's small weights keep the branch small beside the residual: the logits would barely depend
    on the attention. Larger q/k/v weights (output RMS ~5e-3) and a larger o_proj make the scan carry the result,
    so a wrong GLA fails the parity tests."""
    for name, p in model.named_parameters():
        if 'qkv_proj' in name or 'o_proj' in name:
            p.mul_(factor)


def nhwc(t):
    return t.permute(0, 2, 3, 1).contiguous().float().numpy()


# ---------------------------------------------------------------- ViG (plain)

def vig_fixture(out, name, cfg, inputs, seed):
    torch, _ = torch_setup()
    sys.path.insert(0, os.path.join(OFFICIAL, 'vig'))
    vig = importlib.import_module('vig')
    torch.manual_seed(seed)
    model = vig.ViG(**cfg)
    perturb(torch, model, seed)
    amplify_gla(model)
    torch.save(model.state_dict(), os.path.join(out, f'{name}.pth'))
    model = model.double().train()  # the train path merges the two scans as (O^f + O^b)/2; no dropout anywhere
    tensors = {}
    caps = {}
    hooks = [model.patch_embed.register_forward_hook(lambda m, i, o: caps.__setitem__('patch_embed', o[0]))]
    for bi, blk in enumerate(model.blocks):
        hooks.append(blk.register_forward_hook(lambda m, i, o, bi=bi: caps.__setitem__(f'block{bi}', o[0])))
    for ii, (h, w) in enumerate(inputs):
        x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(seed + 100 + ii), dtype=torch.float64)
        caps.clear()
        y = model(x)
        tensors[f'input{ii}'] = nhwc(x)
        tensors[f'logits{ii}'] = y.float().numpy()
        for k2, v2 in caps.items():
            tensors[f'{k2}_{ii}'] = v2.float().numpy()
    for hk in hooks:
        hk.remove()
    write_safetensors(os.path.join(out, f'{name}.io.safetensors'), tensors, {'config': json.dumps(cfg)})
    print(name, 'ok', {k: list(v.shape) for k, v in tensors.items() if k.startswith('logits')})


def vigh_fixture(out, name, cfg, inputs, seed):
    torch, _ = torch_setup()
    sys.path.insert(0, os.path.join(OFFICIAL, 'vig'))
    vig_h = importlib.import_module('vig_h')
    torch.manual_seed(seed)
    model = vig_h.HierViG(**cfg)
    perturb(torch, model, seed)
    amplify_gla(model)
    torch.save(model.state_dict(), os.path.join(out, f'{name}.pth'))
    model = model.double().train()
    tensors = {}
    caps = {}
    hooks = [model.patch_embed.register_forward_hook(lambda m, i, o: caps.__setitem__('patch_embed', o))]
    for li, layer in enumerate(model.layers):
        hooks.append(layer.blocks.register_forward_hook(lambda m, i, o, li=li: caps.__setitem__(f'stage{li}', o)))
    for ii, (h, w) in enumerate(inputs):
        x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(seed + 100 + ii), dtype=torch.float64)
        caps.clear()
        y = model(x)
        tensors[f'input{ii}'] = nhwc(x)
        tensors[f'logits{ii}'] = y.float().numpy()
        for k2, v2 in caps.items():
            tensors[f'{k2}_{ii}'] = nhwc(v2) if model.channel_first else v2.float().numpy()
    for hk in hooks:
        hk.remove()
    write_safetensors(os.path.join(out, f'{name}.io.safetensors'), tensors, {'config': json.dumps(cfg)})
    print(name, 'ok', {k: list(v.shape) for k, v in tensors.items()})


# ---------------------------------------------------------------- DeiT (timm's VisionTransformer), only where timm is installed

def deit_fixture(out, name, cfg, seed):
    import torch
    torch.set_grad_enabled(False)
    from timm.models.vision_transformer import VisionTransformer
    torch.manual_seed(seed)
    model = VisionTransformer(**cfg)
    perturb(torch, model, seed)
    torch.save(model.state_dict(), os.path.join(out, f'{name}.pth'))
    model = model.double().eval()
    x = torch.randn(1, 3, cfg['img_size'], cfg['img_size'], generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    y = model(x)
    write_safetensors(os.path.join(out, f'{name}.io.safetensors'), {'input0': nhwc(x), 'logits0': y.float().numpy()}, {'config': json.dumps(cfg)})
    print(name, 'ok', list(y.shape))


# ---------------------------------------------------------------- HER-Seg

def her_seg_fixture(out, name, seed):
    """MHRMedSeg's forward (model.py) over the official modules, at a reduced width: LGViT + neck +
    PromptEncoder (no prompts) + MaskDecoder(TwoWayTransformer), mask 0, bilinear back to the input size."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    torch.set_grad_enabled(False)
    sys.path.insert(0, os.path.join(OFFICIAL, 'her_seg'))
    from SAM.LGViT import LGViT
    from SAM.common import LayerNorm2d
    from SAM.ecm_decoder import MaskDecoder
    from SAM.prompt_encoder import PromptEncoder
    from SAM.transformer import TwoWayTransformer
    dim, D, img = 16, 32, 64

    class Mini(nn.Module):
        def __init__(self):
            super().__init__()
            self.image_encoder = LGViT(embed_dim=dim, img_size=img, depths=[1, 1, 1], num_heads=[1, 2, 4])
            self.prompt_encoder = PromptEncoder(embed_dim=D, image_embedding_size=(img // 16, img // 16), input_image_size=(img, img), mask_in_chans=16)
            self.mask_decoder = MaskDecoder(transformer=TwoWayTransformer(depth=1, embedding_dim=D, mlp_dim=D, num_heads=2), transformer_dim=D)
            self.neck = nn.Sequential(nn.Conv2d(dim, D, kernel_size=1, bias=False), LayerNorm2d(D), nn.Conv2d(D, D, kernel_size=3, padding=1, bias=False), LayerNorm2d(D))

        def forward(self, x):
            e = self.image_encoder(x)
            B, _, C = e.size()
            e = self.neck(e.view(B, img // 16, img // 16, C).permute(0, 3, 1, 2))
            outs = []
            for i in range(x.shape[0]):
                sp, de = self.prompt_encoder(points=None, boxes=None, masks=None)
                low = self.mask_decoder(image_embeddings=e[i].unsqueeze(0), image_pe=self.prompt_encoder.get_dense_pe(),
                                        sparse_prompt_embeddings=sp, dense_prompt_embeddings=de, multimask_output=False)
                outs.append(F.interpolate(low, (img, img), mode='bilinear', align_corners=False).squeeze(0))
            return torch.stack(outs, 0), e

    torch.manual_seed(seed)
    model = Mini()
    g = torch.Generator().manual_seed(seed)
    for n, p in model.named_parameters():
        noise = torch.randn(p.shape, generator=g)
        p.copy_(1.0 + 0.2 * noise if (n.endswith('weight') and p.ndim == 1) else p + 0.1 * noise)
    for n, b in model.named_buffers():  # BatchNorm running statistics away from 0/1
        if n.endswith('running_mean'):
            b.copy_(0.1 * torch.randn(b.shape, generator=g))
        elif n.endswith('running_var'):
            b.copy_(0.5 + torch.rand(b.shape, generator=g))
    torch.save(model.state_dict(), os.path.join(out, f'{name}.pth'))
    model = model.double().eval()
    # PositionEmbeddingRandom builds its grid in float32 whatever the module's dtype; its values ((k - 0.5) / n)
    # are exact in float32, so casting them to the buffer's float64 changes nothing but lets the product run
    from SAM.prompt_encoder import PositionEmbeddingRandom
    pe_encoding = PositionEmbeddingRandom._pe_encoding
    PositionEmbeddingRandom._pe_encoding = lambda self, c: pe_encoding(self, c.to(self.positional_encoding_gaussian_matrix.dtype))
    x = torch.randn(2, 3, img, img, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    y, emb = model(x)
    write_safetensors(os.path.join(out, f'{name}.io.safetensors'), {'input0': nhwc(x), 'masks0': nhwc(y), 'embedding0': nhwc(emb)})
    print(name, 'ok', list(y.shape))


# ---------------------------------------------------------------- Activator

def activator_fixture(out, name, module_name, cfg, hw, seed):
    import torch
    import torch.nn as nn
    torch.set_grad_enabled(False)
    sys.path.insert(0, os.path.join(OFFICIAL, 'activator'))
    base = importlib.import_module(module_name).ACTIVATOR

    class Classifier(base):  # the wrapper of the official train.py (patcher + mean pool + classifier)
        def __init__(self, in_channels, patch_size, num_classes, d_model, d_ffn, num_layers, dropout):
            super().__init__(d_model, d_ffn, num_layers, dropout)
            self.patcher = nn.Conv2d(in_channels, d_model, kernel_size=patch_size, stride=patch_size)
            self.classifier = nn.Linear(d_model, num_classes)

        def forward(self, x):
            p = self.patcher(x)
            b, c = p.shape[:2]
            e = self.model(p.permute(0, 2, 3, 1).reshape(b, -1, c))
            return self.classifier(e.mean(dim=1))

    torch.manual_seed(seed)
    model = Classifier(**cfg)
    perturb(torch, model, seed)
    torch.save(model.state_dict(), os.path.join(out, f'{name}.pth'))
    model = model.double().eval()
    x = torch.randn(2, 3, hw[0], hw[1], generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    y = model(x)
    write_safetensors(os.path.join(out, f'{name}.io.safetensors'), {'input0': nhwc(x), 'logits0': y.float().numpy()}, {'config': json.dumps(cfg)})
    print(name, 'ok', list(y.shape))


# ---------------------------------------------------------------- MAXIM (JAX/Flax)

def maxim_fixture(out, name, cfg, hw, seed):
    import jax
    jax.config.update('jax_enable_x64', True)
    import jax.numpy as jnp
    sys.path.insert(0, os.path.join(OFFICIAL, 'maxim'))
    maxim = importlib.import_module('maxim')
    model = maxim.Model(**cfg)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (1, hw[0], hw[1], 3)).astype(np.float32)
    variables = model.init(jax.random.PRNGKey(seed), jnp.asarray(x))
    params = jax.tree_util.tree_map(np.asarray, variables['params'])
    flat = {}

    def walk(prefix, node):
        for k2 in sorted(node):
            v2 = node[k2]
            if isinstance(v2, dict) or hasattr(v2, 'items'):
                walk(f'{prefix}{k2}/', dict(v2))
            else:
                a = np.asarray(v2, np.float32)
                if k2 == 'scale':
                    a = (1.0 + 0.2 * rng.standard_normal(a.shape)).astype(np.float32)
                elif k2 == 'bias':
                    a = (a + 0.1 * rng.standard_normal(a.shape)).astype(np.float32)
                else:
                    s = float(a.std()) if a.size > 1 and a.std() > 0 else 0.05
                    a = (a + 0.5 * s * rng.standard_normal(a.shape)).astype(np.float32)
                flat[f'{prefix}{k2}'] = a

    walk('', dict(params))
    np.savez(os.path.join(out, f'{name}.npz'), **{f'opt/target/{k2}': v2 for k2, v2 in flat.items()})

    def unflatten(d):
        tree = {}
        for k2, v2 in d.items():
            node = tree
            parts = k2.split('/')
            for p in parts[:-1]:
                node = node.setdefault(p, {})
            node[parts[-1]] = jnp.asarray(v2, jnp.float64)
        return tree

    outs = model.apply({'params': unflatten(flat)}, jnp.asarray(x, jnp.float64))
    tensors = {'input0': x}
    for s, stage in enumerate(outs):
        for j, o in enumerate(stage):
            tensors[f'stage{s}_scale{j}'] = np.asarray(o, np.float32)
    write_safetensors(os.path.join(out, f'{name}.io.safetensors'), tensors, {'config': json.dumps(cfg)})
    print(name, 'ok', {k: list(v.shape) for k, v in tensors.items()}, 'params', sum(v.size for v in flat.values()))


# ---------------------------------------------------------------- Triton check (separate process, CUDA)

def triton_check():
    import torch
    fla_dir = os.path.join(OFFICIAL, 'vig', 'fla')
    module('fla', __path__=[fla_dir])
    module('fla.ops', __path__=[os.path.join(fla_dir, 'ops')])
    from fla.ops.gla.chunk_fuse import fused_chunk_gla
    from fla.ops.gla.recurrent_fuse import bid_fused_recurrent_gla
    g = torch.Generator().manual_seed(0)
    B, H, T, K, V = 2, 2, 100, 16, 32
    q, k = (torch.randn(B, H, T, K, generator=g) for _ in range(2))
    v = torch.randn(B, H, T, V, generator=g)
    gf = torch.nn.functional.logsigmoid(torch.randn(B, H, T, K, generator=g) * 3) / 16
    gb = torch.nn.functional.logsigmoid(torch.randn(B, H, T, K, generator=g) * 3) / 16

    def naive(q, k, v, g, reverse):
        S = torch.zeros(B, H, K, V, dtype=torch.float64)
        o = torch.zeros(B, H, T, V, dtype=torch.float64)
        for t in (range(T - 1, -1, -1) if reverse else range(T)):
            S = S * g[:, :, t].double().exp()[..., None] + k[:, :, t, :, None].double() * v[:, :, t, None, :].double()
            o[:, :, t] = torch.einsum('bhk,bhkv->bhv', q[:, :, t].double() * K ** -0.5, S)
        return o

    ref_f = naive(q, k, v, gf, False)
    ref_bi = (ref_f + naive(q, k, v, gb, True)) / 2
    cu = [t.cuda() for t in (q, k, v, gf, gb)]
    o1, _ = fused_chunk_gla(cu[0], cu[1], cu[2], cu[3])
    o2, _ = bid_fused_recurrent_gla(cu[0], cu[1], cu[2], torch.cat([cu[3], cu[4]], 0), None)
    rel = lambda a, b: float((a.double().cpu() - b).abs().max() / b.abs().max())
    print(json.dumps({'triton_fused_chunk_vs_naive_maxrel': rel(o1, ref_f), 'triton_bid_recurrent_vs_naive_maxrel': rel(o2, ref_bi)}))


# ---------------------------------------------------------------- main

def main(out):
    os.makedirs(out, exist_ok=True)
    jobs = []
    if have('timm.models.vision_transformer'):  # before any shim is installed
        jobs.append(lambda: deit_fixture(out, 'deit_mini', dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2,
                                                                 mlp_ratio=4.0, qkv_bias=True, num_classes=10), 7))
    else:
        print('timm not installed: no DeiT fixture')
    jobs += [
        # ViG-T style (SiLU after the dwconv and before o_proj); trained at 64², run at 64² and 96x128 (resized pos-embed)
        lambda: vig_fixture(out, 'vig_t_mini', dict(img_size=64, patch_size=16, stride=16, depth=2, num_heads=2, embed_dim=48,
                                                     num_classes=10, if_cls_token=False, classification_mode='avgpool',
                                                     use_out_act=True, use_out_gate=False, use_swiglu=True, use_act_in_conv=True,
                                                     drop_path_rate=0.0, expand_k=0.5, expand_v=1.0, patch_embed_version='v2',
                                                     attn_model='fused_chunk'), [(64, 64), (96, 128)], 1),
        # ViG-S/B style (no extra SiLUs)
        lambda: vig_fixture(out, 'vig_s_mini', dict(img_size=64, patch_size=16, stride=16, depth=1, num_heads=2, embed_dim=48,
                                                     num_classes=10, if_cls_token=False, classification_mode='avgpool',
                                                     use_out_act=False, use_out_gate=False, use_swiglu=True, use_act_in_conv=False,
                                                     drop_path_rate=0.0, expand_k=0.5, expand_v=1.0, patch_embed_version='v2',
                                                     attn_model='fused_chunk'), [(80, 64)], 2),
        lambda: vigh_fixture(out, 'vig_h_mini', dict(patch_size=4, num_classes=10, depths=[1, 1, 1, 1], dims=[16, 24, 32, 32],
                                                      num_heads=[1, 2, 2, 2], attn_models=['fused_chunk'] * 4, expand_k=0.5, expand_v=1.0,
                                                      use_out_act=False, use_act_in_conv=False, mlp_ratio=4.0, gmlp=True,
                                                      drop_path_rate=0.0, norm_layer='ln2d', downsample_version='v3',
                                                      patchembed_version='v2'), [(64, 96)], 3),
        lambda: activator_fixture(out, 'activator_mini', 'activator', dict(in_channels=3, patch_size=4, num_classes=10, d_model=32,
                                                                           d_ffn=64, num_layers=2, dropout=0.5), (16, 16), 4),
        lambda: activator_fixture(out, 'activator_glu_only_mini', 'activator_only_GEGLU', dict(in_channels=3, patch_size=4, num_classes=10,
                                                                                               d_model=32, d_ffn=64, num_layers=2, dropout=0.5), (16, 12), 5),
        lambda: maxim_fixture(out, 'maxim_mini', dict(features=4, depth=3, num_stages=2, num_groups=2, num_bottleneck_blocks=2,
                                                      block_gmlp_factor=2, grid_gmlp_factor=2, input_proj_factor=2, channels_reduction=4,
                                                      num_supervision_scales=3, block_size_hr=(4, 4), grid_size_hr=(4, 4),
                                                      block_size_lr=(2, 2), grid_size_lr=(2, 2)), (32, 48), 6),
        lambda: her_seg_fixture(out, 'her_seg_mini', 8),
    ]
    only = sys.argv[sys.argv.index('--only') + 1] if '--only' in sys.argv else None
    for job in jobs:
        if only and only not in job.__code__.co_consts.__repr__():
            continue
        try:
            job()
        except Exception:
            traceback.print_exc()
    if os.environ.get('SKIP_TRITON') != '1':
        env = dict(os.environ, TRITON_ALLOW_NON_CONSTEXPR_GLOBALS='1')
        r = subprocess.run([sys.executable, __file__, '--triton-check'], capture_output=True, text=True, timeout=300, env=env)
        print('triton-check rc', r.returncode, r.stdout[-2000:], r.stderr[-3000:])


if __name__ == '__main__':
    if sys.argv[1:] == ['--triton-check']:
        triton_check()
    else:
        main(sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith('--') else 'fixtures_out')
