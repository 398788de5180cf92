/** `gatedvision keys add|revoke|list`: API keys of the service (only hashes are stored; a new key is printed once). */
import { defineCommand } from 'citty';
import { GatedError } from '../core/errors.ts';
import { Store } from '../service/store.ts';

export const DEFAULT_DATA_DIR = 'gatedvision-data';
const dataDirArg = { type: 'string', description: 'service state folder', default: DEFAULT_DATA_DIR, valueHint: 'D' } as const;

function withStore<T>(dataDir: string, fn: (s: Store) => T): T {
  const store = new Store(dataDir);
  try {
    return fn(store);
  } finally {
    store.close();
  }
}

const add = defineCommand({
  meta: { name: 'add', description: 'Create a key for a client and print it (the only time it is shown)' },
  args: { client: { type: 'positional', required: true, description: 'client name' }, 'data-dir': dataDirArg },
  run({ args }) {
    const { token, keyId } = withStore(args['data-dir'], (s) => s.addKey(args.client));
    process.stdout.write(`${token}\n`);
    process.stderr.write(`key ${keyId} added for client '${args.client}'; store it now, it cannot be shown again\n`);
  },
});

const revoke = defineCommand({
  meta: { name: 'revoke', description: 'Revoke every key of a client, or one key by its id' },
  args: { client: { type: 'positional', required: true, description: 'client name or key id' }, 'data-dir': dataDirArg },
  run({ args }) {
    const n = withStore(args['data-dir'], (s) => s.revoke(args.client));
    if (n === 0) throw new GatedError('not_found', `no active key for '${args.client}'`);
    process.stderr.write(`revoked ${n} key(s)\n`);
  },
});

const list = defineCommand({
  meta: { name: 'list', description: 'List clients and key ids (never the keys)' },
  args: { 'data-dir': dataDirArg, json: { type: 'boolean', description: 'print JSON' } },
  run({ args }) {
    const keys = withStore(args['data-dir'], (s) => s.listKeys());
    if (args.json) {
      process.stdout.write(`${JSON.stringify(keys)}\n`);
      return;
    }
    for (const k of keys) process.stdout.write(`${k.client}\t${k.keyId}\t${new Date(k.createdAt).toISOString()}\t${k.revokedAt ? `revoked ${new Date(k.revokedAt).toISOString()}` : 'active'}\n`);
  },
});

export const keysCommand = defineCommand({
  meta: { name: 'keys', description: 'Manage the API keys of the service' },
  subCommands: { add, revoke, list },
});
