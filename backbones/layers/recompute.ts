/**
 * Activation recomputation (gradient checkpointing, Chen et al. 2016 "Training Deep Nets with Sublinear Memory
 * Cost"). tfjs's tape keeps every tensor each op saves for its gradient until the whole backward pass ends, and
 * keeps every intermediate gradient too; for a deep model at high resolution that is thousands of
 * activation-sized tensors. A segment run through `recompute` leaves on the tape only its inputs: its forward
 * runs untaped, and its gradient re-runs the segment under a fresh tape and backpropagates through that copy
 * with `gradientsFreeing` (below), so at most one segment's activations are alive at a time. Results are those
 * of the plain function (same ops, same order; sums of gradients may associate differently); the price is one
 * more forward pass per step.
 *
 *   y = recompute((xs, consts) => block(xs[0], consts[0]), [x], params, [mask])
 *
 * `xs` are differentiated; `params` are the trainable variables the segment reads (they must all be listed: a
 * variable read but not listed gets no gradient from this segment); `consts` are tensors the segment reads
 * without needing their gradient (random masks, position tables). They are kept until the backward pass,
 * because the caller's scope releases them before it runs. The segment must be deterministic: draw random
 * masks outside and pass them in `consts`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { GatedError } from '../../core/errors.ts';

export type Segment = (xs: tf.Tensor[], consts: tf.Tensor[]) => tf.Tensor;

export function recompute(fn: Segment, xs: tf.Tensor[], params: readonly tf.Variable[], consts: tf.Tensor[] = []): tf.Tensor {
  const engine = tf.engine();
  // nothing will ask for a gradient (inference, or a segment inside another segment's untaped forward)
  if (!engine.isTapeOn()) return fn(xs, consts);
  for (const x of xs) if (x.dtype !== 'float32') throw new GatedError('internal', `recompute differentiates float32 inputs only; got ${x.dtype}`);
  const nx = xs.length;
  const run = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const ins = args.slice(0, nx) as tf.Tensor[];
    save([...ins, ...consts]);
    return {
      value: fn(ins, consts),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const savedXs = saved.slice(0, nx);
        const savedConsts = saved.slice(nx);
        const wrt = [...savedXs, ...params];
        const { value, grads } = gradientsFreeing(() => fn(savedXs, savedConsts), wrt, dy);
        value.dispose();
        // an input or variable the segment does not reach gets a zero gradient, as the tape would give it
        return grads.map((g, i) => g ?? tf.zerosLike(wrt[i]!));
      },
    };
  });
  return run(...xs, ...params);
}

/**
 * Gradients of f at `xs` (times `dy`; default ones), like tf's own, but freeing memory as the backward pass goes,
 * as PyTorch's autograd does: each op's saved tensors are released once its gradient is taken, and each
 * intermediate gradient once it has been passed back. tfjs's engine keeps both until the whole pass ends, so
 * its peak is every activation plus every intermediate gradient. `grads[i]` is undefined where f does not
 * depend on xs[i]. Must not run inside another gradient's forward pass (it would not be differentiable there).
 */
export function gradientsFreeing(f: () => tf.Tensor, xs: tf.Tensor[], dy?: tf.Tensor): { value: tf.Tensor; grads: (tf.Tensor | undefined)[] } {
  const engine = tf.engine();
  const state = engine.state;
  if (state.gradientDepth > 0) throw new GatedError('internal', 'gradientsFreeing cannot run inside another gradient computation');
  const outer = state.activeTape;
  const tape: TapeNode[] = [];
  state.activeTape = tape;
  state.gradientDepth++;
  let y: tf.Tensor;
  try {
    y = engine.tidy('forward', f);
  } finally {
    state.gradientDepth--;
    state.activeTape = outer;
  }
  if (!(y instanceof tf.Tensor)) throw new GatedError('internal', 'the function to differentiate must return a tensor');
  if (dy && (dy.dtype !== 'float32' || dy.rank !== y.rank || dy.shape.some((d, i) => d !== y.shape[i]))) throw new GatedError('shape', `dy must be float32 of shape ${y.shape}; got ${dy.dtype} ${dy.shape}`);
  return engine.tidy('backward', () => {
    const { onPath, fromX } = pathNodes(tape, xs, y);
    for (let i = 0; i < tape.length; i++) if (!onPath[i]) release(tape[i]!);
    const acc = new Map<number, tf.Tensor>();
    const held = new Set<tf.Tensor>();
    const put = (id: number, t: tf.Tensor) => {
      acc.set(id, t);
      held.add(t);
    };
    const drop = (t: tf.Tensor) => {
      held.delete(t);
      if (t !== dy) t.dispose(); // the caller's dy is the caller's
    };
    put(y.id, dy ?? tf.onesLike(y));
    for (let i = tape.length - 1; i >= 0; i--) {
      if (!onPath[i]) continue;
      const node = tape[i]!;
      if (!node.gradient) throw new GatedError('internal', `no gradient is registered for ${node.kernelName}`);
      const dys = node.outputs.map((o) => acc.get(o.id) ?? null) as tf.Tensor[]; // null: zeros (the node fills them)
      const names = Object.keys(node.inputs).filter((n) => fromX.has(node.inputs[n]!.id));
      // one scope per op: what its gradient computes and nobody asked for (a fused op's unused input) goes at once
      const dxs = engine.tidy(() => {
        const g = node.gradient!(dys);
        return names.map((n) => {
          if (!(n in g)) throw new GatedError('internal', `the gradient of ${node.kernelName} has no entry for its input '${n}'`);
          const dx = g[n]!();
          const x = node.inputs[n]!;
          if (dx.dtype !== 'float32' || dx.shape.some((d, k) => d !== x.shape[k])) throw new GatedError('internal', `the gradient of ${node.kernelName} for '${n}' is ${dx.dtype} ${dx.shape}, its input ${x.shape}`);
          return held.has(dx) ? dx.clone() : dx; // an own handle: passing dy straight through would otherwise free it twice
        });
      });
      const seen = new Set<tf.Tensor>();
      names.forEach((n, k) => {
        let dx = dxs[k]!;
        if (seen.has(dx)) dx = dx.clone();
        seen.add(dx);
        const id = node.inputs[n]!.id;
        const cur = acc.get(id);
        if (!cur) return put(id, dx);
        put(id, tf.add(cur, dx));
        drop(cur);
        dx.dispose();
      });
      for (const o of node.outputs) {
        const g = acc.get(o.id);
        if (!g) continue;
        acc.delete(o.id);
        drop(g);
      }
      release(node);
    }
    return { value: y, grads: xs.map((x) => acc.get(x.id)) };
  });
}

/** tf.variableGrads with the freeing backward pass of `gradientsFreeing`: the loss and the gradient of each variable f reaches, by name. */
export function variableGradsFreeing(f: () => tf.Scalar, vars: tf.Variable[]): { value: tf.Scalar; grads: Record<string, tf.Tensor> } {
  const trainable = vars.filter((v) => v.trainable);
  const { value, grads } = gradientsFreeing(f, trainable);
  const out: Record<string, tf.Tensor> = {};
  trainable.forEach((v, i) => {
    if (grads[i]) out[v.name] = grads[i]!;
  });
  return { value: value as tf.Scalar, grads: out };
}

// --- internal ---

type TapeNode = ReturnType<typeof tf.engine>['state']['activeTape'][number];

/** The tape's nodes between xs and y (as tf's getFilteredNodesXToY), and the ids of tensors that depend on xs. */
function pathNodes(tape: TapeNode[], xs: tf.Tensor[], y: tf.Tensor): { onPath: boolean[]; fromX: Set<number> } {
  const fromX = new Set(xs.map((x) => x.id));
  const reached = tape.map((node) => {
    const hit = Object.values(node.inputs).some((t) => fromX.has(t.id));
    if (hit) for (const o of node.outputs) fromX.add(o.id);
    return hit;
  });
  const toY = new Set([y.id]);
  const onPath = new Array<boolean>(tape.length).fill(false);
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i]!;
    if (!node.outputs.some((o) => toY.has(o.id))) continue;
    for (const t of Object.values(node.inputs)) toY.add(t.id);
    onPath[i] = reached[i]!;
  }
  return { onPath, fromX };
}

function release(node: TapeNode): void {
  for (const t of node.saved ?? []) t.dispose();
  node.saved = [];
}
