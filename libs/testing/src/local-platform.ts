// The whole platform on one machine, as `npm start` runs it and the chaos soak tries it: nats-server, then
// every service as its own process, each kept running like a Kubernetes container (restarted with a
// back-off when it exits). Two profiles:
// - `single`: one of each (two one-slot transcoders, one the warm standby), the default of `npm start`;
// - `fleet`: replicas as on GKE: a three-node NATS cluster (streams and buckets R3), two ingests behind a
//   random TCP balancer on the RTMP port, three transcoders, two packagers (their origins behind a random
//   balancer), two supervisors, two chat pods behind a random balancer, one web.
// The URLs a user sees (RTMP, origin, chat, web) are the same in both.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Balancer, startTcpBalancer } from './balancer.js';
import { natsServerBinary, natsServerEnv } from './nats.js';
import type { Exit } from './process.js';
import {
  type ProcessStatus,
  type RestartingProcess,
  type RestartPolicy,
  startRestarting,
} from './restarting.js';
import { repoRoot, serviceCommand } from './service.js';
import { freePort, waitFor } from './wait.js';

export type Profile = 'single' | 'fleet';

export interface LocalPorts {
  /** What users connect to: the RTMP port, the HLS/LL-HLS origin, the chat WebSocket, the pages. */
  rtmp: number;
  origin: number;
  chat: number;
  web: number;
  webOps: number;
  nats: { client: number; monitor: number; route: number }[];
  ingest: { rtmp: number; ops: number }[];
  supervisor: { ops: number }[];
  packager: { http: number; ops: number }[];
  transcoder: { ops: number }[];
  chatPods: { port: number; ops: number }[];
}

/** The ports `npm start` uses: the user-facing ones are the same in both profiles. */
export function defaultPorts(profile: Profile): LocalPorts {
  const user = { rtmp: 1935, origin: 8090, chat: 8081, web: 8080, webOps: 9106 };
  if (profile === 'single') {
    return {
      ...user,
      nats: [{ client: 4222, monitor: 8222, route: 6222 }],
      ingest: [{ rtmp: 1935, ops: 9101 }],
      supervisor: [{ ops: 9104 }],
      packager: [{ http: 8090, ops: 9103 }],
      transcoder: [{ ops: 9102 }, { ops: 9112 }],
      chatPods: [{ port: 8081, ops: 9105 }],
    };
  }
  // Replicas listen beside the user-facing port, which a balancer holds.
  return {
    ...user,
    nats: [0, 1, 2].map((i) => ({ client: 4222 + i, monitor: 8222 + i, route: 6222 + i })),
    ingest: [0, 1].map((i) => ({ rtmp: 1936 + i, ops: 9101 + 10 * i })),
    supervisor: [0, 1].map((i) => ({ ops: 9104 + 10 * i })),
    packager: [0, 1].map((i) => ({ http: 8091 + i, ops: 9103 + 10 * i })),
    transcoder: [0, 1, 2].map((i) => ({ ops: 9102 + 10 * i })),
    chatPods: [0, 1].map((i) => ({ port: 8082 + i, ops: 9105 + 10 * i })),
  };
}

/** The same shape on ports the OS says are free (tests and benchmarks beside a running `npm start`). */
export async function freeLocalPorts(profile: Profile): Promise<LocalPorts> {
  const shape = defaultPorts(profile);
  const fresh = async <T extends Record<string, number>>(list: T[]): Promise<T[]> => {
    const out: T[] = [];
    for (const item of list) {
      const entry = {} as Record<string, number>;
      for (const key of Object.keys(item)) entry[key] = await freePort();
      out.push(entry as T);
    }
    return out;
  };
  const [rtmp, origin, chat, web, webOps] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ] as [number, number, number, number, number];
  const ports: LocalPorts = {
    rtmp,
    origin,
    chat,
    web,
    webOps,
    nats: await fresh(shape.nats),
    ingest: await fresh(shape.ingest),
    supervisor: await fresh(shape.supervisor),
    packager: await fresh(shape.packager),
    transcoder: await fresh(shape.transcoder),
    chatPods: await fresh(shape.chatPods),
  };
  if (profile === 'single') {
    // No balancers: the one replica listens on the user-facing port itself.
    (ports.ingest[0] as { rtmp: number }).rtmp = rtmp;
    (ports.packager[0] as { http: number }).http = origin;
    (ports.chatPods[0] as { port: number }).port = chat;
  }
  return ports;
}

export interface Rendition {
  name: string;
  width: number;
  height: number;
  fps: number;
  videoKbps: number;
  audioKbps: number;
}

/** One machine runs everything: a ladder capped at 480p keeps a laptop cool and still shows ABR. */
export const LOCAL_LADDER: Rendition[] = [
  { name: '480p', width: 854, height: 480, fps: 30, videoKbps: 1400, audioKbps: 96 },
  { name: '360p', width: 640, height: 360, fps: 30, videoKbps: 800, audioKbps: 96 },
  { name: '240p', width: 426, height: 240, fps: 30, videoKbps: 400, audioKbps: 64 },
];

export interface LocalPlatformOptions {
  profile: Profile;
  ports: LocalPorts;
  /** .data (npm start) or a temp folder: NATS stores, media, transcoder work dirs. */
  dataDir: string;
  chatTokenSecret: string;
  ladder?: Rendition[];
  /** x264 preset of the workers. */
  preset?: string;
  /** Slots per transcoder (default: 1 single, 2 fleet: three streams and a standby on three workers). */
  transcoderSlots?: number;
  /** Extra environment for every service (LOG_LEVEL, test timings). */
  env?: Record<string, string>;
  restartPolicy?: RestartPolicy;
  /** Every output line of every process, and the runner's own lines (name 'local'). */
  onLine: (name: string, line: string) => void;
  /** Build the pages only when services/web has none (tests); npm start always builds them. */
  buildPages?: 'always' | 'if-missing';
}

export type ServiceKind = 'nats' | 'ingest' | 'supervisor' | 'packager' | 'transcoder' | 'chat' | 'web';

export interface LocalProcess {
  kind: ServiceKind;
  /** Unique: the kind, with the replica's number where there are several ("ingest-2"). */
  name: string;
  /** Port of /healthz and /readyz (nats-server: its monitoring port). */
  opsPort: number;
  /** Ports it listens on (for the chaos soak's malformed requests). */
  listens: number[];
  process: RestartingProcess;
}

export interface LocalPlatform {
  readonly profile: Profile;
  readonly ports: LocalPorts;
  readonly natsUrls: string[];
  readonly processes: LocalProcess[];
  readonly balancers: Balancer[];
  status(): ProcessStatus[];
  /** Resolves when every process answers its readiness check. */
  ready(timeoutMs?: number): Promise<void>;
  /** SIGTERM to each process once, in the reverse of the start order (each kind's replicas together). */
  stop(): Promise<void>;
}

/** Runs Vite for the pages the web service serves. */
export function buildWebPages(when: 'always' | 'if-missing'): void {
  if (when === 'if-missing' && existsSync(join(repoRoot, 'services/web/dist/public/watch.html'))) return;
  const built = spawnSync('npm', ['run', 'build:pages', '-w', '@live/web', '--silent'], {
    cwd: repoRoot,
    stdio: 'inherit',
  });
  if (built.status !== 0) throw new Error('vite build of services/web failed');
}

const readyUrl = (port: number) => `http://127.0.0.1:${port}/readyz`;
const natsReadyUrl = (port: number) => `http://127.0.0.1:${port}/healthz?js-enabled-only=true`;

/**
 * Starts every process (and, in the fleet profile, the balancers). If a step fails, what was started is
 * stopped before the error is thrown: a restarting process left behind would outlive its caller.
 */
export async function startLocalPlatform(options: LocalPlatformOptions): Promise<LocalPlatform> {
  const processes: LocalProcess[] = [];
  const balancers: Balancer[] = [];
  try {
    return await launch(options, processes, balancers);
  } catch (error) {
    await Promise.all(balancers.map((b) => b.close()));
    await Promise.all(processes.map((p) => p.process.stop('SIGKILL')));
    throw error;
  }
}

async function launch(
  options: LocalPlatformOptions,
  processes: LocalProcess[],
  balancers: Balancer[],
): Promise<LocalPlatform> {
  const { profile, ports, dataDir, onLine } = options;
  const fleet = profile === 'fleet';
  const natsUrls = ports.nats.map((n) => `nats://127.0.0.1:${n.client}`);
  const say = (line: string) => onLine('local', line);

  const keep = (
    kind: ServiceKind,
    index: number,
    count: number,
    command: { command: string; args: string[] },
    env: NodeJS.ProcessEnv,
    opsPort: number,
    listens: number[],
  ): LocalProcess => {
    const name = count > 1 ? `${kind}-${index + 1}` : kind;
    const restarting = startRestarting({
      name,
      ...command,
      env,
      cwd: repoRoot,
      ownProcessGroup: true,
      keepLines: 50,
      onLine: (line) => onLine(name, line),
      ...(options.restartPolicy ? { policy: options.restartPolicy } : {}),
      onExit: (exit: Exit, restarts: number, delayMs: number) =>
        say(
          `${name} exited (${exit.signal ?? `code ${exit.code}`}); restarting in ${delayMs / 1000} s (restarts so far: ${restarts})`,
        ),
      onRestart: (child, restarts) => say(`${name} restarted (pid ${child.pid}, restart ${restarts})`),
    });
    const entry = { kind, name, opsPort, listens, process: restarting };
    processes.push(entry);
    return entry;
  };

  // NATS: one server, or a three-node cluster whose streams and buckets the services create with R3.
  ports.nats.forEach((n, i) => {
    const store = join(dataDir, fleet ? `nats-${i + 1}` : 'nats');
    mkdirSync(store, { recursive: true });
    const args = ['-a', '127.0.0.1', '-p', String(n.client), '-m', String(n.monitor), '-js', '-sd', store];
    args.push('--server_name', fleet ? `local-${i + 1}` : 'local');
    if (fleet) {
      const routes = ports.nats.map((r) => `nats://127.0.0.1:${r.route}`).join(',');
      args.push('--cluster_name', 'local', '--cluster', `nats://127.0.0.1:${n.route}`, '--routes', routes);
    }
    keep('nats', i, ports.nats.length, { command: natsServerBinary(), args }, natsServerEnv(), n.monitor, [
      n.client,
      n.monitor,
    ]);
  });
  say(`nats-server${fleet ? ' cluster (3 nodes)' : ''} with JetStream (store ${dataDir})`);
  await waitFor(
    async () => {
      const jsz = (await (await fetch(`http://127.0.0.1:${ports.nats[0]?.monitor}/jsz`)).json()) as {
        meta_cluster?: { leader?: string };
      };
      // A cluster's JetStream is usable once it has elected a meta leader; a single server at once.
      return !fleet || Boolean(jsz.meta_cluster?.leader);
    },
    { timeoutMs: 20_000, what: `nats-server on port ${ports.nats[0]?.client} (is another one using it?)` },
  );

  const common: NodeJS.ProcessEnv = {
    ...process.env,
    NATS_URL: natsUrls.join(','),
    NATS_REPLICAS: fleet ? '3' : '1',
    STORAGE: 'local',
    STORAGE_LOCAL_DIR: join(dataDir, 'media'),
    ...options.env,
  };
  const service = (
    kind: Exclude<ServiceKind, 'nats'>,
    replicas: { ops: number }[],
    env: (i: number) => Record<string, string>,
    listens: (i: number) => number[],
  ) =>
    replicas.map((r, i) =>
      keep(kind, i, replicas.length, serviceCommand(kind), { ...common, ...env(i) }, r.ops, [
        r.ops,
        ...listens(i),
      ]),
    );

  service(
    'ingest',
    ports.ingest,
    (i) => ({
      INGEST_BIND: '127.0.0.1',
      INGEST_RTMP_PORT: String(ports.ingest[i]?.rtmp),
      INGEST_OPS_PORT: String(ports.ingest[i]?.ops),
    }),
    (i) => [ports.ingest[i]?.rtmp as number],
  );
  service(
    'supervisor',
    ports.supervisor,
    (i) => ({
      SUPERVISOR_OPS_PORT: String(ports.supervisor[i]?.ops),
      SUPERVISOR_LADDER: JSON.stringify(options.ladder ?? LOCAL_LADDER),
    }),
    () => [],
  );
  service(
    'packager',
    ports.packager,
    (i) => ({
      PACKAGER_OPS_PORT: String(ports.packager[i]?.ops),
      PACKAGER_HTTP_PORT: String(ports.packager[i]?.http),
      PACKAGER_HTTP_BIND: '127.0.0.1',
    }),
    (i) => [ports.packager[i]?.http as number],
  );
  service(
    'transcoder',
    ports.transcoder,
    (i) => ({
      // The same id after a restart, as a pod keeps its name when its container restarts.
      TRANSCODER_WORKER_ID: `local-${i + 1}`,
      TRANSCODER_SLOTS: String(options.transcoderSlots ?? (fleet ? 2 : 1)),
      TRANSCODER_OPS_PORT: String(ports.transcoder[i]?.ops),
      TRANSCODER_WORK_DIR: join(dataDir, 'transcode', `local-${i + 1}`),
      // A cheaper x264 preset than production's veryfast: the whole platform shares this machine.
      TRANSCODER_PRESET: options.preset ?? 'superfast',
    }),
    () => [],
  );
  service(
    'chat',
    ports.chatPods,
    (i) => ({
      CHAT_BIND: '127.0.0.1',
      CHAT_PORT: String(ports.chatPods[i]?.port),
      CHAT_OPS_PORT: String(ports.chatPods[i]?.ops),
      CHAT_TOKEN_SECRET: options.chatTokenSecret,
      // Local mode only: guest tokens from the chat itself (POST /api/chat/token), for scripts and tools.
      CHAT_GUEST_TOKENS: 'true',
    }),
    (i) => [ports.chatPods[i]?.port as number],
  );
  say('building the web pages (vite build)');
  buildWebPages(options.buildPages ?? 'always');
  service(
    'web',
    [{ ops: ports.webOps }],
    () => ({
      WEB_BIND: '127.0.0.1',
      WEB_PORT: String(ports.web),
      WEB_OPS_PORT: String(ports.webOps),
      // Local mode, explicitly: studio and ops without a token, guest chat tokens, HLS through this port.
      WEB_AUTH: 'none',
      WEB_GUEST_CHAT: 'true',
      WEB_HLS_UPSTREAM: `http://127.0.0.1:${ports.origin}`,
      WEB_CHAT_URL: `ws://localhost:${ports.chat}/chat`,
      WEB_RTMP_URL: `rtmp://localhost:${ports.rtmp}/live`,
    }),
    () => [ports.web],
  );

  if (fleet) {
    const balance = async (name: string, port: number, kind: ServiceKind, target: (i: number) => number) => {
      const replicas = processes.filter((p) => p.kind === kind);
      balancers.push(
        await startTcpBalancer({
          name,
          port,
          backends: replicas.map((p, i) => ({
            name: p.name,
            host: '127.0.0.1',
            port: target(i),
            readyUrl: readyUrl(p.opsPort),
          })),
          onLine: say,
        }),
      );
    };
    await balance('rtmp', ports.rtmp, 'ingest', (i) => ports.ingest[i]?.rtmp as number);
    await balance('origin', ports.origin, 'packager', (i) => ports.packager[i]?.http as number);
    await balance('chat', ports.chat, 'chat', (i) => ports.chatPods[i]?.port as number);
  }

  const platform: LocalPlatform = {
    profile,
    ports,
    natsUrls,
    processes,
    balancers,
    status: () => processes.map((p) => p.process.status()),
    async ready(timeoutMs = 90_000) {
      await Promise.all(
        processes.map((p) =>
          waitFor(
            async () => (await fetch(p.kind === 'nats' ? natsReadyUrl(p.opsPort) : readyUrl(p.opsPort))).ok,
            { timeoutMs, intervalMs: 100, what: `${p.name} to be ready` },
          ),
        ),
      );
      // A balancer sends connections only to backends its last probe found ready.
      await waitFor(() => balancers.every((b) => b.ready().length === b.backends), {
        timeoutMs,
        what: 'balancers to see every replica ready',
      });
    },
    async stop() {
      say('stopping...');
      await Promise.all(balancers.map((b) => b.close()));
      const order: ServiceKind[] = ['web', 'chat', 'transcoder', 'packager', 'supervisor', 'ingest', 'nats'];
      for (const kind of order) {
        await Promise.all(
          processes.filter((p) => p.kind === kind).map((p) => p.process.stop('SIGTERM', 8000)),
        );
      }
    },
  };
  return platform;
}
