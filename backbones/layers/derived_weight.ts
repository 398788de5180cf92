/**
 * A weight derived from parameters (ViG's packed projection: the q/k/v, gate and GLI kernels side by side), so
 * that one matmul replaces several. Outside gradient recording the derived tensor is built once and kept until
 * one of its parameters is reassigned (a load or an optimizer step gives the variable new data); while
 * gradients are recorded it is rebuilt on every call, inside the tape, so the gradients reach the parameters.
 */
import * as tf from '@tensorflow/tfjs-core';
import { compilingOnly, recordingGradients } from '../../kernels/flags.ts';
import type { Param } from '../_params.ts';

export class DerivedWeight {
  #value: tf.Tensor | null = null;
  #sources: readonly object[] = [];

  constructor(
    private readonly params: readonly Param[],
    private readonly build: (values: tf.Tensor[]) => tf.Tensor,
  ) {}

  get(): tf.Tensor {
    if (recordingGradients()) return this.build(this.params.map((p) => p.v as tf.Tensor));
    // by data id, without bringing back parameters offloaded to host memory (ParamStore.offload)
    const sources = this.params.map((p) => p.store.sourceId(p.name));
    if (!this.#value || this.#value.isDisposed || sources.some((s, i) => s !== this.#sources[i])) {
      // programs compiled but not run build a tensor without values: used for this pass (whose tidy frees it),
      // never kept, so the first real pass builds it for real
      if (compilingOnly()) return this.build(this.params.map((p) => p.v as tf.Tensor));
      this.dispose();
      const values = this.params.map((p) => p.v as tf.Tensor);
      this.#value = tf.keep(tf.tidy(() => this.build(values)));
      this.#sources = this.params.map((p) => p.store.sourceId(p.name));
    }
    return this.#value;
  }

  /** The parameters this weight is built from. */
  get sources(): readonly Param[] {
    return this.params;
  }

  dispose(): void {
    this.#value?.dispose();
    this.#value = null;
    this.#sources = [];
  }
}
