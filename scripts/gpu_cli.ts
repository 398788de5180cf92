/** The CLI as one bundle for a machine without a package registry (see the GPU section of bench/RESULTS.md). */
import { main } from '../cli/main.ts';

process.exitCode = await main(process.argv.slice(2));
