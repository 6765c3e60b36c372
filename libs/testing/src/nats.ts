// A real nats-server with JetStream for tests: free ports, a temp store, stopped by pid. Also a 3-node
// JetStream cluster on loopback for fault tests. No mocked NATS anywhere.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Child, startChild } from './process.js';
import { freePort, waitFor } from './wait.js';

export interface NatsServer {
  readonly url: string;
  readonly port: number;
  readonly monitorUrl: string;
  readonly storeDir: string;
  child: Child;
  /** Stops the server (SIGTERM, then SIGKILL); the store is kept so `start()` brings the same data back. */
  stop(): Promise<void>;
  /**
   * SIGKILL, as a crash or an OOM kill does it: no lame-duck mode, no hand-off of its leaderships; the
   * store is kept, so `start()` brings it back. Resolves when the process is gone.
   */
  kill(): Promise<void>;
  /** Starts it again on the same ports and store (after `stop()` or `kill()`). */
  start(): Promise<void>;
  /** Stops it and removes the store. */
  dispose(): Promise<void>;
}

export function natsServerBinary(): string {
  try {
    return execFileSync('which', ['nats-server'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(
      'nats-server is not installed: run `npm test` (it installs it with apt-get) or `apt-get install -y nats-server`',
    );
  }
}

/**
 * The environment of a nats-server on one machine beside ffmpeg (tests, benchmarks, `npm start`): one Go
 * scheduler thread (GOMAXPROCS=1). One core is far more than a platform's traffic needs (tens of messages a
 * second per stream), and with one thread a message's read and its delivery run on the same thread instead
 * of waking another: nats-server used 8 instead of 11-12 ms of CPU per second beside one stream (measured,
 * two interleaved pairs).
 */
export const natsServerEnv = (): NodeJS.ProcessEnv => ({ ...process.env, GOMAXPROCS: '1' });

interface ServerSpec {
  name: string;
  port: number;
  monitorPort: number;
  storeDir: string;
  cluster?: { name: string; port: number; routes: number[] };
  /** Extra server configuration (accounts, users, permissions), written as a config file (JSON is valid). */
  config?: Record<string, unknown>;
}

async function launch(spec: ServerSpec): Promise<Child> {
  const args = [
    '-a',
    '127.0.0.1',
    '-p',
    String(spec.port),
    '-m',
    String(spec.monitorPort),
    '-js',
    '-sd',
    spec.storeDir,
    '--server_name',
    spec.name,
  ];
  if (spec.config) {
    const file = join(spec.storeDir, 'server.conf');
    writeFileSync(file, JSON.stringify(spec.config, null, 2));
    args.push('-c', file);
  }
  if (spec.cluster) {
    args.push(
      '--cluster_name',
      spec.cluster.name,
      '--cluster',
      `nats://127.0.0.1:${spec.cluster.port}`,
      '--routes',
      spec.cluster.routes.map((p) => `nats://127.0.0.1:${p}`).join(','),
    );
  }
  const child = startChild({ name: spec.name, command: natsServerBinary(), args, env: natsServerEnv() });
  const healthz = `http://127.0.0.1:${spec.monitorPort}/healthz?js-enabled-only=true`;
  await waitFor(
    async () => {
      if (child.hasExited()) throw new Error(`nats-server exited: ${child.tail().join('\n')}`);
      return (await fetch(healthz)).ok;
    },
    { timeoutMs: 10_000, what: `nats-server ${spec.name} on port ${spec.port}` },
  );
  return child;
}

function wrap(spec: ServerSpec, first: Child): NatsServer {
  const server: NatsServer = {
    url: `nats://127.0.0.1:${spec.port}`,
    port: spec.port,
    monitorUrl: `http://127.0.0.1:${spec.monitorPort}`,
    storeDir: spec.storeDir,
    child: first,
    async stop() {
      await server.child.stop('SIGTERM', 3000);
    },
    async kill() {
      await server.child.stop('SIGKILL');
    },
    async start() {
      server.child = await launch(spec);
    },
    async dispose() {
      await server.child.stop('SIGKILL');
      rmSync(spec.storeDir, { recursive: true, force: true });
    },
  };
  return server;
}

/** One nats-server with JetStream on free ports and a temp store. */
export async function startNatsServer(name = 'test', config?: Record<string, unknown>): Promise<NatsServer> {
  const spec: ServerSpec = {
    name,
    port: await freePort(),
    monitorPort: await freePort(),
    storeDir: mkdtempSync(join(tmpdir(), 'nats-')),
    ...(config ? { config } : {}),
  };
  return wrap(spec, await launch(spec));
}

export interface NatsCluster {
  readonly servers: NatsServer[];
  /** All client URLs (pass the array to connect). */
  readonly urls: string[];
  dispose(): Promise<void>;
}

/** A 3-node JetStream cluster on loopback (distinct client/route/monitor ports, server names and stores). */
export async function startNatsCluster(size = 3): Promise<NatsCluster> {
  const routePorts = await Promise.all(Array.from({ length: size }, () => freePort()));
  const specs: ServerSpec[] = [];
  for (let i = 0; i < size; i++) {
    specs.push({
      name: `n${i + 1}`,
      port: await freePort(),
      monitorPort: await freePort(),
      storeDir: mkdtempSync(join(tmpdir(), `nats-n${i + 1}-`)),
      cluster: { name: 'test-cluster', port: routePorts[i] as number, routes: routePorts },
    });
  }
  const children = await Promise.all(specs.map(launch));
  const servers = specs.map((spec, i) => wrap(spec, children[i] as Child));
  // JetStream in a cluster is usable once a meta leader is elected.
  await waitFor(
    async () => {
      const jsz = (await (await fetch(`${servers[0]?.monitorUrl}/jsz`)).json()) as {
        meta_cluster?: { leader?: string };
      };
      return Boolean(jsz.meta_cluster?.leader);
    },
    { timeoutMs: 15_000, what: 'JetStream meta leader election' },
  );
  return {
    servers,
    urls: servers.map((s) => s.url),
    async dispose() {
      await Promise.all(servers.map((s) => s.dispose()));
    },
  };
}
