// Starts one of the platform's services as its own process (as in production), from source, and waits
// until its /readyz says ready.
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Child, startChild } from './process.js';
import { waitFor } from './wait.js';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

export interface ServiceProcessOptions {
  /** services/<name>/src/main.ts */
  service: string;
  env: Record<string, string>;
  /** Port of its ops HTTP server, to wait for /readyz. */
  opsPort: number;
  /** Collects the service's log lines (JSON). */
  onLine?: (line: string) => void;
  timeoutMs?: number;
}

/**
 * Node.js flags each service runs with: here (tests, benchmarks, `npm start`) and in its Dockerfile's CMD
 * (deploy/test/manifests.test.ts checks that they agree).
 * --single-threaded-gc for the media path's services: their heaps are small (tens of MB), and handing GC
 * work to V8's helper threads cost more CPU than it saved: measured beside one 720p ladder, two platforms
 * side by side on this VM (2026-12-03), the services used 1-4 ms/s less with it (the worker most: its
 * concurrent marking threads woke for every cycle), with main-thread pauses of a few ms at most. Chat and
 * web keep V8's default: their heaps grow with connections, where parallel GC keeps pauses short.
 */
export const SERVICE_NODE_FLAGS: Record<string, string[]> = {
  ingest: ['--single-threaded-gc'],
  supervisor: ['--single-threaded-gc'],
  transcoder: ['--single-threaded-gc'],
  packager: ['--single-threaded-gc'],
  chat: [],
  web: [],
};

/**
 * How to run a service: from source through tsx (tests, `npm start`), or, with LIVE_SERVICES_FROM=dist,
 * the compiled JavaScript production runs (benchmarks: tsx's loader thread alone costs an idle process
 * ~0.6 % of a core). `npm run build` makes dist.
 */
export function serviceCommand(service: string, entry = 'main.ts'): { command: string; args: string[] } {
  // Extra node flags for every service, e.g. LIVE_SERVICES_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof".
  const nodeArgs = [
    ...(SERVICE_NODE_FLAGS[service] ?? []),
    ...(process.env.LIVE_SERVICES_NODE_ARGS ?? '').split(' ').filter(Boolean),
  ];
  if (process.env.LIVE_SERVICES_FROM === 'dist') {
    return {
      command: process.execPath,
      args: [...nodeArgs, join(repoRoot, 'services', service, 'dist', entry.replace(/\.ts$/, '.js'))],
    };
  }
  return {
    command: process.execPath,
    args: [
      ...nodeArgs,
      '--conditions=source',
      '--import',
      'tsx',
      join(repoRoot, 'services', service, 'src', entry),
    ],
  };
}

export async function startServiceProcess(options: ServiceProcessOptions): Promise<Child> {
  const { command, args } = serviceCommand(options.service);
  const child = startChild({
    name: options.service,
    command,
    args,
    cwd: repoRoot,
    env: { ...process.env, LOG_LEVEL: 'debug', ...options.env },
    onLine: options.onLine ? (line) => options.onLine?.(line) : undefined,
  });
  await waitFor(
    async () => {
      if (child.hasExited())
        throw new Error(`${options.service} exited:\n${child.tail().slice(-20).join('\n')}`);
      return (await fetch(`http://127.0.0.1:${options.opsPort}/readyz`)).ok;
    },
    { timeoutMs: options.timeoutMs ?? 20_000, what: `${options.service} to be ready` },
  ).catch((error: Error) => {
    child.signal('SIGKILL');
    throw new Error(`${error.message}\n${child.tail().slice(-20).join('\n')}`);
  });
  return child;
}
