/**
 * Native decoders (sharp, libvips) may crash the process they run in; JavaScript and WebAssembly codecs
 * cannot. A decoding worker thread shares its caller's process, so it refuses native code: the task then
 * ends with a refusal and the supervisor runs it again in a child process (see sandbox.ts).
 */
let allowed = true;
let refused = false;

/** Called once by a decoding worker thread, before any task runs. */
export function forbidNativeDecoders(): void {
  allowed = false;
}

/** Throws (and remembers it) where native code is not allowed; call before loading a native decoder. */
export function assertNativeAllowed(what: string): void {
  if (allowed) return;
  refused = true;
  throw new Error(`${what} needs a native decoder, which runs only in a child process`);
}

/** Whether a task of this thread asked for native code: its error, however wrapped, means "run me in a process". */
export function nativeWasRefused(): boolean {
  return refused;
}

/**
 * The sandbox for reading `input` (and writing `output`) when only their names are known: images and PNG
 * output need sharp, so a child process; the rest a worker thread. Only a guess for speed: a worker that
 * meets an image anyway refuses it and the task runs again in a child process.
 */
export function sandboxModeFor(input: string, output = ''): 'process' | 'worker' {
  return IMAGE_EXT.test(input) || /\.png$/i.test(output) ? 'process' : 'worker';
}

const IMAGE_EXT = /\.(png|jpe?g|tiff?|webp)$/i;
