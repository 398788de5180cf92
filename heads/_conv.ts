/** The square conv layers the heads are built from: kernel [k, k, in, out] + bias, named as the heads save them. */
import { fanInUniform, zeros, type Init, type Param, type Store } from '../backbones/_params.ts';

export interface ConvP {
  k: Param;
  b: Param;
}

/** `${name}.kernel` (fan-in uniform unless `init` is given) and `${name}.bias` (zeros). */
export function convParams(store: Store, name: string, kh: number, cin: number, cout: number, init: Init = fanInUniform(kh * kh * cin)): ConvP {
  return { k: store.add(`${name}.kernel`, [kh, kh, cin, cout], init), b: store.add(`${name}.bias`, [cout], zeros) };
}
