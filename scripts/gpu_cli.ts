/**
 * The CLI as one bundle for a machine without a package registry (see the GPU section of bench/RESULTS.md).
 * `backbones ...` and `train-step ...` run bench/backbones.ts and bench/train_step.ts from the same bundle.
 */
import { main as benchBackbones } from '../bench/backbones.ts';
import { main as benchTrainStep } from '../bench/train_step.ts';
import { main } from '../cli/main.ts';

const argv = process.argv.slice(2);
if (argv[0] === 'backbones') await benchBackbones(argv.slice(1));
else if (argv[0] === 'train-step') await benchTrainStep(argv.slice(1));
else process.exitCode = await main(argv);
