// bench:chat — one room on one chat process, loaded by separate load processes on this machine
// (bench/chat-load.ts), then the same workload against a plain Socket.IO server (bench/socketio-server.ts).
// Per server: connect all (RSS per idle connection = RSS delta / connections), a steady phase at the
// target rate (inbound msgs/s; deliveries/s = room events counted at the receivers, several to a frame when
// the chat batches them; send -> deliver latency p50/p99/max from 1 in --sample receivers; server CPU and
// RSS), after an unmeasured warm-up at the same rate; then a ramp from the target rate by x1.41 steps, up
// while a step passes (p99 <= 200 ms and deliveries >= 95 % of sent x connections, no disconnects), down
// while it fails; the highest passing step's deliveries/s is the "max delivery rate at p99 <= 200 ms".
// Every step starts with all the connections that joined: those a failed step dropped are opened again.
// A server that passes no step down to the lowest (>= 1 msg/s) has its max below that step's expected
// deliveries/s, so the ratio against it is a lower bound (">").
// Targets (chat issue): 10,000 connections at 20 msgs/s (200,000 deliveries/s) with p99 <= 200 ms,
// <= 20 KB RSS per idle connection, >= 2x Socket.IO's max delivery rate at p99 <= 200 ms.
//   npm run bench:chat -- [--connections 10000] [--rate 20] [--seconds 15] [--only ours|socketio] [--quick]
//     [--step-seconds 10] [--warmup 3] [--procs 4] [--senders 20] [--sample 20] [--concurrency 200]
//     [--max-steps 8] [--refine 2] [--sio-client lib|ws] [--chat-env CHAT_X=value ...] [--json out.json]
// After the x1.41 ramp, --refine bisection steps between the highest passing and the lowest failing rate.
// --quick: 1,000 connections, 2 load processes, 5 s steady, 4 s steps, 1 refinement (development).
// --sio-client ws: the baseline's clients speak the Socket.IO protocol through ws (as cheap as ours) instead
// of socket.io-client, so the load processes take the same CPU from this machine for both servers.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  type Child,
  freePort,
  type NatsServer,
  repoRoot,
  startChild,
  startNatsServer,
  startServiceProcess,
  waitFor,
} from '@live/testing';
import { type Command, Histogram, type Report, type Snapshot, type Target } from './chat-shared.js';
import { cpuSeconds, rssBytes } from './lib.js';

const { values } = parseArgs({
  options: {
    connections: { type: 'string' },
    rate: { type: 'string' },
    seconds: { type: 'string' },
    'step-seconds': { type: 'string' },
    only: { type: 'string' },
    quick: { type: 'boolean', default: false },
    procs: { type: 'string' },
    senders: { type: 'string', default: '20' },
    sample: { type: 'string', default: '20' },
    concurrency: { type: 'string', default: '200' },
    'max-steps': { type: 'string', default: '8' },
    refine: { type: 'string' },
    warmup: { type: 'string' },
    'sio-client': { type: 'string', default: 'lib' },
    /** Extra environment for the chat process, e.g. --chat-env CHAT_BATCH_MS=0 (repeatable). */
    'chat-env': { type: 'string', multiple: true, default: [] },
    json: { type: 'string' },
  },
});
const chatEnv: Record<string, string> = {};
for (const pair of values['chat-env']) {
  const [key, ...rest] = pair.split('=');
  if (!key || !/^CHAT_[A-Z_]+$/.test(key) || rest.length === 0)
    throw new Error(`--chat-env CHAT_X=value, not ${pair}`);
  chatEnv[key] = rest.join('=');
}
const quick = values.quick;
const num = (value: string | undefined, normal: number, quickValue: number) =>
  value === undefined ? (quick ? quickValue : normal) : Number(value);
const connections = num(values.connections, 10_000, 1000);
const targetRate = num(values.rate, 20, 20);
const steadySeconds = num(values.seconds, 15, 5);
const stepSeconds = num(values['step-seconds'], 10, 4);
const procs = num(values.procs, 4, 2);
const senderCount = Number(values.senders);
const sample = Number(values.sample);
const concurrency = Number(values.concurrency);
const maxSteps = Number(values['max-steps']);
const warmupSeconds = num(values.warmup, 3, 2);
const refineSteps = num(values.refine, 2, 1);
const sioClient = values['sio-client'];
if (sioClient !== 'lib' && sioClient !== 'ws') throw new Error('--sio-client lib|ws');
const only = values.only;
if (only !== undefined && only !== 'ours' && only !== 'socketio') throw new Error('--only ours|socketio');
/** Bounded: the chat runs with CHAT_MAX_CONNECTIONS=20000 and each process here with `ulimit -n` 20000. */
const MAX_CONNECTIONS = 19_000;
if (!(connections > senderCount && senderCount > 0 && procs > 0 && procs <= 16 && targetRate > 0))
  throw new Error('need --connections > --senders > 0, 0 < --procs <= 16, --rate > 0');
if (connections > MAX_CONNECTIONS) throw new Error(`--connections is at most ${MAX_CONNECTIONS}`);
if (!(maxSteps >= 0 && maxSteps <= 20)) throw new Error('--max-steps is 0..20');
if (!(refineSteps >= 0 && refineSteps <= 4)) throw new Error('--refine is 0..4');
const room = 'bench';
const P99_LIMIT_MS = 200;
const STEP = Math.SQRT2;
/** The whole run stops by itself after this, whatever happens. */
const DEADLINE_MS = 45 * 60_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (message: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${message}`);
const round = (value: number, digits = 0) => (Number.isFinite(value) ? +value.toFixed(digits) : null);
const mib = (bytes: number) => round(bytes / 2 ** 20, 1);

// ---------------------------------------------------------------------------------------------------------
// Everything started is stopped by pid, in reverse order, even on failure, SIGINT or the deadline.

const cleanups: { name: string; stop: () => Promise<unknown> }[] = [];
async function cleanup(): Promise<void> {
  while (cleanups.length > 0) {
    const entry = cleanups.pop();
    try {
      await entry?.stop();
    } catch (error) {
      console.error(`stopping ${entry?.name}: ${error instanceof Error ? error.message : error}`);
    }
  }
}
const abort = (why: string) => {
  console.error(`\nbench:chat ${why}: stopping everything`);
  void cleanup().finally(() => process.exit(1));
};
process.once('SIGINT', () => abort('interrupted'));
process.once('SIGTERM', () => abort('terminated'));
setTimeout(() => abort(`reached its ${DEADLINE_MS / 60_000} min deadline`), DEADLINE_MS).unref();

// ---------------------------------------------------------------------------------------------------------
// Load processes: node + tsx on bench/chat-load.ts with an IPC channel, tied to this process by setpriv.

class LoadProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  private readonly waiters = new Map<string, (report: Report) => void>();
  private readonly stderr: string[] = [];
  private nextId = 0;
  exited = false;
  onReport?: (report: Report) => void;

  constructor(
    readonly name: string,
    args: string[],
  ) {
    const command = [
      process.execPath,
      '--conditions=source',
      '--import',
      'tsx',
      join(repoRoot, 'bench', 'chat-load.ts'),
      ...args,
    ];
    const [cmd, ...argv] = existsSync('/usr/bin/setpriv')
      ? ['/usr/bin/setpriv', '--pdeathsig', 'KILL', '--', ...command]
      : command;
    this.child = spawn(cmd as string, argv, { stdio: ['ignore', 'inherit', 'pipe', 'ipc'] });
    if (this.child.pid === undefined) throw new Error(`${name}: could not start`);
    this.pid = this.child.pid;
    this.child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      this.stderr.splice(0, Math.max(0, this.stderr.length - 30));
    });
    this.child.on('exit', () => {
      this.exited = true;
    });
    this.child.on('message', (report: Report) => {
      const key = report.type === 'snapshot' ? `snapshot:${report.id}` : report.type;
      const waiter = this.waiters.get(key);
      if (waiter) {
        this.waiters.delete(key);
        waiter(report);
      }
      this.onReport?.(report);
    });
  }

  tail(): string {
    return this.stderr.slice(-15).join('\n');
  }

  command(command: Command): void {
    if (!this.exited) this.child.send(command);
  }

  /** The next report of this type (or the snapshot answering `id`). */
  wait<T extends Report['type']>(key: string, timeoutMs: number): Promise<Extract<Report, { type: T }>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(key);
        this.child.off('exit', onExit);
        reject(new Error(`${this.name}: no ${key} report within ${timeoutMs} ms\n${this.tail()}`));
      }, timeoutMs);
      const onExit = () => reject(new Error(`${this.name} exited\n${this.tail()}`));
      this.child.once('exit', onExit);
      this.waiters.set(key, (report) => {
        clearTimeout(timer);
        this.child.off('exit', onExit);
        resolve(report as Extract<Report, { type: T }>);
      });
    });
  }

  async snapshot(hist?: number): Promise<Snapshot> {
    const id = this.nextId++;
    const reply = this.wait<'snapshot'>(`snapshot:${id}`, 30_000);
    this.command(hist === undefined ? { type: 'snapshot', id } : { type: 'snapshot', id, hist });
    return reply;
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise((resolve) => this.child.once('exit', resolve));
    this.command({ type: 'exit' });
    const timer = setTimeout(() => process.kill(this.pid, 'SIGKILL'), 3000);
    await gone;
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------------------
// The servers under test.

interface Server {
  label: string;
  pid: number;
  url: string;
  /** Other processes whose CPU is reported alongside (nats-server). */
  helpers: { name: string; pid: number }[];
  /** Warnings and errors the server logged. */
  logLines: string[];
  notes: string[];
  exited(): boolean;
}

async function startOurs(secret: string): Promise<Server> {
  const nats: NatsServer = await startNatsServer('bench-chat');
  cleanups.push({ name: 'nats-server', stop: () => nats.dispose() });
  const port = await freePort();
  const opsPort = await freePort();
  const logLines: string[] = [];
  const chat: Child = await startServiceProcess({
    service: 'chat',
    opsPort,
    timeoutMs: 60_000,
    env: {
      NATS_URL: nats.url,
      LOG_LEVEL: 'warn',
      CHAT_BIND: '127.0.0.1',
      CHAT_PORT: String(port),
      CHAT_OPS_PORT: String(opsPort),
      CHAT_TOKEN_SECRET: secret,
      CHAT_ROOM_BURST: '100000',
      CHAT_ROOM_REFILL_MS: '1',
      CHAT_USER_BURST: '1000',
      CHAT_USER_REFILL_MS: '1',
      CHAT_MAX_CONNECTIONS: '20000',
      ...chatEnv,
    },
    onLine: (line) => {
      if (logLines.length < 200) logLines.push(line);
    },
  });
  cleanups.push({ name: 'chat', stop: () => chat.stop('SIGTERM', 5000) });
  return {
    label: 'chat (ours)',
    pid: chat.pid,
    url: `ws://127.0.0.1:${port}`,
    helpers: [{ name: 'nats-server', pid: nats.child.pid }],
    logLines,
    notes: [
      'one chat process (services/chat; from dist under npm run bench:chat), NATS JetStream on this machine',
      `room events may come several to a frame (CHAT_BATCH_MS=${chatEnv.CHAT_BATCH_MS ?? 'service default'}): deliveries count events, frames/s WebSocket messages; latency includes the batching wait`,
      ...(Object.keys(chatEnv).length ? [`chat env overrides: ${JSON.stringify(chatEnv)}`] : []),
    ],
    exited: () => chat.hasExited(),
  };
}

async function startSocketIo(): Promise<Server> {
  const port = await freePort();
  const logLines: string[] = [];
  const child = startChild({
    name: 'socketio-server',
    command: process.execPath,
    args: ['--import', 'tsx', join(repoRoot, 'bench', 'socketio-server.ts'), '--port', String(port)],
    cwd: repoRoot,
    onLine: (line) => {
      if (!line.startsWith('listening') && logLines.length < 200) logLines.push(line);
    },
  });
  cleanups.push({ name: 'socketio-server', stop: () => child.stop('SIGTERM', 3000) });
  await waitFor(
    () => {
      if (child.hasExited()) throw new Error(`socketio-server exited:\n${child.tail().join('\n')}`);
      return child.tail().some((line) => line.startsWith('listening'));
    },
    { timeoutMs: 30_000, what: 'the Socket.IO server to listen' },
  );
  return {
    label: 'Socket.IO',
    pid: child.pid,
    url: `http://127.0.0.1:${port}`,
    helpers: [],
    logLines,
    notes: [
      'plain Socket.IO 4 server (websocket transport, io.to(room).emit), no auth, no storage, no NATS: it does less work per message',
      sioClient === 'lib'
        ? 'clients: socket.io-client (every receiver decodes every packet: the load processes use more CPU than with ours, on the same cores)'
        : 'clients: the Socket.IO protocol through ws (--sio-client ws), receivers as cheap as ours',
    ],
    exited: () => child.hasExited(),
  };
}

// ---------------------------------------------------------------------------------------------------------
// One server: connect, idle RSS, steady phase, ramp.

interface PhaseResult {
  phase: number;
  targetRate: number;
  seconds: number;
  inboundPerSec: number | null;
  deliveriesPerSec: number | null;
  /** WebSocket messages received per second (fewer than deliveries when the server batches events). */
  framesPerSec: number | null;
  expectedDeliveriesPerSec: number | null;
  /** Deliveries in the window / (messages sent x connections open). */
  deliveredFraction: number | null;
  /** Sampled receivers: messages that arrived (within the drain time) / messages they should get. */
  sampledDeliveredFraction: number | null;
  latencyMs: { p50: number | null; p99: number | null; max: number | null; samples: number };
  serverCpuCores: number | null;
  serverRssMiB: number | null;
  loadCpuCores: number | null;
  helperCpuCores: Record<string, number | null>;
  /** The whole machine's busy cores during the phase (/proc/stat). */
  machineCpuCores: number | null;
  /** ...of which not in the server, its helpers, the load processes or this process. */
  restCpuCores: number | null;
  disconnects: number;
  pass: boolean;
  why: string;
}

interface ServerResult {
  server: string;
  notes: string[];
  connectionsRequested: number;
  connectionsJoined: number;
  connectionsFailed: number;
  connectSeconds: number | null;
  rssBeforeMiB: number | null;
  rssIdleMiB: number | null;
  rssPerIdleConnectionKB: number | null;
  steady: PhaseResult;
  ramp: PhaseResult[];
  maxDeliveriesPerSecAtP99: number;
  maxRateAtP99: number;
  /** No step above the best one failed (--max-steps ran out going up): the real maximum is higher. */
  maxIsLowerBound: boolean;
  /**
   * No step passed: the expected deliveries/s of the lowest step tried (rate x connections). The max at
   * p99 <= 200 ms is below it, so it bounds the ratio from below.
   */
  noStepPassedAt: number | null;
  closed: Record<string, number>;
  otherFrames: Record<string, number>;
  clientErrors: string[];
  serverLog: string[];
}

const sum = (list: number[]) => list.reduce((a, b) => a + b, 0);

/** Busy CPU seconds of the whole machine so far (all cores; /proc/stat, USER_HZ = 100). */
function machineBusySeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
  return ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) / 100;
}
const addInto = (into: Record<string, number>, from: Record<string, number>) => {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
};

async function runServer(target: Target, secret: string): Promise<ServerResult> {
  const server = target === 'chat' ? await startOurs(secret) : await startSocketIo();
  log(`${server.label} up (pid ${server.pid}); starting ${procs} receiver processes and 1 sender process`);
  const receiverCount = connections - senderCount;
  const common = ['--target', target, '--url', server.url, '--room', room, '--sample', String(sample)];
  common.push('--client', sioClient);
  const receivers: LoadProcess[] = [];
  let offset = 0;
  for (let p = 0; p < procs; p++) {
    const share = Math.floor(receiverCount / procs) + (p < receiverCount % procs ? 1 : 0);
    const args = [...common, '--role', 'receivers', '--count', String(share), '--first', String(offset)];
    args.push('--concurrency', String(Math.max(1, Math.round(concurrency / procs))));
    receivers.push(new LoadProcess(`load-${p + 1}`, args));
    offset += share;
  }
  const sender = new LoadProcess('senders', [
    ...common,
    '--role',
    'senders',
    '--count',
    String(senderCount),
    '--first',
    '0',
    '--concurrency',
    '20',
  ]);
  const loads = [...receivers, sender];
  for (const load of loads) cleanups.push({ name: load.name, stop: () => load.stop() });
  await Promise.all(loads.map((load) => load.wait('ready', 60_000)));

  // Idle server before any connection.
  await sleep(2000);
  const rssBefore = rssBytes(server.pid);

  log(`connecting ${connections} connections (${concurrency} in flight)...`);
  const t0 = Date.now();
  const joinedBy = new Map<LoadProcess, number>();
  for (const load of loads) {
    load.onReport = (report) => {
      if (report.type === 'progress' || report.type === 'connected') joinedBy.set(load, report.joined);
    };
  }
  const ticker = setInterval(() => {
    log(`  ${sum([...joinedBy.values()])} joined`);
    if (server.exited()) log(`  ${server.label} exited!`);
  }, 5000);
  const connectTimeout = Math.max(120_000, connections * 20);
  const connected = await Promise.all(
    loads.map((load) => {
      const done = load.wait<'connected'>('connected', connectTimeout);
      load.command({ type: 'connect', secret });
      return done;
    }),
  ).finally(() => clearInterval(ticker));
  const connectSeconds = (Date.now() - t0) / 1000;
  const joined = sum(connected.map((c) => c.joined));
  const failedCount = sum(connected.map((c) => c.failed));
  const connectErrors = [...new Set(connected.flatMap((c) => c.errors))];
  log(
    `${joined} joined, ${failedCount} failed in ${connectSeconds.toFixed(1)} s${connectErrors.length ? `; errors: ${connectErrors.slice(0, 5).join(' | ')}` : ''}`,
  );
  if (joined === 0) throw new Error(`${server.label}: no connection joined: ${connectErrors.join(' | ')}`);

  // Idle with every connection open.
  await sleep(3000);
  const rssIdle = rssBytes(server.pid);
  const snapshotAll = (hist?: number) => Promise.all(loads.map((load) => load.snapshot(hist)));
  const base = await snapshotAll();
  const sampledTotal = sum(base.map((s) => s.sampled));

  /** Waits until deliveries stop (a backlog from a failing step drains; at most 30 s). */
  const settle = async () => {
    let last = sum((await snapshotAll()).map((s) => s.events));
    for (let i = 0; i < 60; i++) {
      await sleep(500);
      const now = sum((await snapshotAll()).map((s) => s.events));
      if (now === last) break;
      last = now;
    }
  };
  /**
   * A failed step can drop connections (Socket.IO's ping timeouts under overload). Each step starts with
   * every connection that joined: the lost ones are opened again first (and the room settles), else the
   * steps after a failure would measure a smaller room, or none.
   */
  const restoreConnections = async () => {
    const lost = joined - sum((await snapshotAll()).map((s) => s.open));
    if (lost <= 0) return;
    log(`  reconnecting ${lost} connections dropped in the last step...`);
    const results = await Promise.all(
      loads.map((load) => {
        const done = load.wait<'reconnected'>('reconnected', connectTimeout);
        load.command({ type: 'reconnect' });
        return done;
      }),
    );
    const reopened = sum(results.map((r) => r.reopened));
    const failedAgain = sum(results.map((r) => r.failed));
    log(`  ${reopened} reconnected, ${failedAgain} failed`);
    await settle();
  };
  let phaseNo = 0;
  const runPhase = async (rate: number, seconds: number): Promise<PhaseResult> => {
    await restoreConnections();
    const phase = ++phaseNo;
    const s0 = await snapshotAll();
    const openAtStart = sum(s0.map((s) => s.open));
    const sampledOpen = sampledTotal;
    const closedAtStart = sum(s0.map((s) => sum(Object.values(s.closed))));
    const cpu0 = cpuSeconds(server.pid);
    const helper0 = server.helpers.map((h) => cpuSeconds(h.pid));
    const machine0 = machineBusySeconds();
    const self0 = process.cpuUsage();
    const tStart = performance.now();
    sender.command({ type: 'rate', rate, phase });
    const rss: number[] = [];
    while (performance.now() - tStart < seconds * 1000) {
      await sleep(Math.min(1000, seconds * 1000 - (performance.now() - tStart)));
      if (!server.exited()) rss.push(rssBytes(server.pid));
    }
    sender.command({ type: 'rate', rate: 0, phase });
    const s1 = await snapshotAll();
    const window = (performance.now() - tStart) / 1000;
    const serverCpu = server.exited() ? Number.NaN : (cpuSeconds(server.pid) - cpu0) / window;
    const helperCpu = Object.fromEntries(
      server.helpers.map((h, i) => [h.name, round((cpuSeconds(h.pid) - (helper0[i] ?? 0)) / window, 2)]),
    );
    const loadCpu = (sum(s1.map((s) => s.cpuSeconds)) - sum(s0.map((s) => s.cpuSeconds))) / window;
    const self = process.cpuUsage(self0);
    const machineCpu = (machineBusySeconds() - machine0) / window;
    // Busy time on this machine that none of the bench's processes account for: other processes (tests
    // someone runs meanwhile) and kernel work outside process time (e.g. loopback TCP in softirq).
    const restCpu =
      machineCpu -
      (Number.isFinite(serverCpu) ? serverCpu : 0) -
      loadCpu -
      sum(Object.values(helperCpu).map((c) => c ?? 0)) -
      (self.user + self.system) / 1e6 / window;
    const sent = sum(s1.map((s) => s.sent[phase] ?? 0));
    // Let the messages of this phase arrive (or give up after 5 s) before reading latency.
    let s2 = s1;
    const drainUntil = performance.now() + 5000;
    while (performance.now() < drainUntil) {
      const got = sum(s2.map((s) => s.sampledDeliveries[phase] ?? 0));
      if (got >= sent * sampledOpen) break;
      await sleep(250);
      s2 = await snapshotAll();
    }
    const hist = new Histogram();
    for (const s of await snapshotAll(phase)) hist.merge(s.hist);
    const maxLatency = Math.max(0, ...s2.map((s) => s.maxLatencyMs[phase] ?? 0));
    const delivered = sum(s1.map((s) => s.events)) - sum(s0.map((s) => s.events));
    const frames = sum(s1.map((s) => s.frames)) - sum(s0.map((s) => s.frames));
    const expected = sent * openAtStart;
    const sampledGot = sum(s2.map((s) => s.sampledDeliveries[phase] ?? 0));
    const disconnects = sum(s2.map((s) => sum(Object.values(s.closed)))) - closedAtStart;
    const p99 = hist.percentile(99);
    const fraction = expected > 0 ? delivered / expected : Number.NaN;
    const sampledFraction = sent * sampledOpen > 0 ? sampledGot / (sent * sampledOpen) : Number.NaN;
    const why: string[] = [];
    if (!(p99 <= P99_LIMIT_MS)) why.push(`p99 ${round(p99, 1)} ms > ${P99_LIMIT_MS}`);
    if (!(fraction >= 0.95)) why.push(`deliveries ${round(fraction * 100, 1)} % of expected`);
    if (!(sampledFraction >= 0.95)) why.push(`sampled receivers got ${round(sampledFraction * 100, 1)} %`);
    if (!(sent >= 0.95 * rate * window)) why.push(`senders reached ${round(sent / window, 1)} msgs/s only`);
    if (disconnects > 0) why.push(`${disconnects} disconnects`);
    if (server.exited()) why.push('server exited');
    const result: PhaseResult = {
      phase,
      targetRate: rate,
      seconds: round(window, 1) ?? seconds,
      inboundPerSec: round(sent / window, 1),
      deliveriesPerSec: round(delivered / window),
      framesPerSec: round(frames / window),
      expectedDeliveriesPerSec: round(expected / window),
      deliveredFraction: round(fraction, 3),
      sampledDeliveredFraction: round(sampledFraction, 3),
      latencyMs: {
        p50: round(hist.percentile(50), 1),
        p99: round(p99, 1),
        max: round(maxLatency, 1),
        samples: hist.total,
      },
      serverCpuCores: round(serverCpu, 2),
      serverRssMiB: rss.length ? mib(Math.max(...rss)) : null,
      loadCpuCores: round(loadCpu, 2),
      helperCpuCores: helperCpu,
      machineCpuCores: round(machineCpu, 2),
      restCpuCores: round(Math.max(0, restCpu), 2),
      disconnects,
      pass: why.length === 0,
      why: why.join('; '),
    };
    log(
      `  ${rate} msgs/s: ${result.inboundPerSec} in/s, ${result.deliveriesPerSec} deliveries/s (${round(fraction * 100, 1)} %), p50 ${result.latencyMs.p50} p99 ${result.latencyMs.p99} max ${result.latencyMs.max} ms, server ${result.serverCpuCores} cores, load ${result.loadCpuCores} cores -> ${result.pass ? 'pass' : `FAIL (${result.why})`}`,
    );
    await settle();
    return result;
  };

  if (warmupSeconds > 0) {
    // Not measured (phase 0): JIT, buffers and the NATS path warm up before the steady phase.
    log(`warm-up: ${targetRate} msgs/s for ${warmupSeconds} s`);
    sender.command({ type: 'rate', rate: targetRate, phase: 0 });
    await sleep(warmupSeconds * 1000);
    sender.command({ type: 'rate', rate: 0, phase: 0 });
    await settle();
  }
  log(`steady: ${targetRate} msgs/s for ${steadySeconds} s`);
  const steady = await runPhase(targetRate, steadySeconds);
  const ramp: PhaseResult[] = [steady];
  const rateOf = (r: number) => Math.round(r * 10) / 10;
  log(
    `ramp: x${STEP.toFixed(2)} steps of ${stepSeconds} s, ${steady.pass ? 'up' : 'down'} from ${targetRate}`,
  );
  let rate = targetRate;
  for (let step = 0; step < maxSteps; step++) {
    const last = ramp.at(-1) as PhaseResult;
    if (server.exited()) break;
    if (steady.pass) {
      if (!last.pass) break;
      rate = rateOf(rate * STEP);
    } else {
      if (last.pass) break;
      rate = rateOf(rate / STEP);
      if (rate < 1) break;
    }
    ramp.push(await runPhase(rate, stepSeconds));
  }
  // Bisect between the highest passing and the lowest failing rate above it (x1.19, then x1.09 apart).
  for (let i = 0; i < refineSteps && !server.exited(); i++) {
    const lo = Math.max(0, ...ramp.filter((p) => p.pass).map((p) => p.targetRate));
    const hi = Math.min(...ramp.filter((p) => !p.pass && p.targetRate > lo).map((p) => p.targetRate));
    if (lo === 0 || !Number.isFinite(hi)) break;
    const mid = rateOf(Math.sqrt(lo * hi));
    if (mid <= lo || mid >= hi) break;
    log(`refine: between ${lo} and ${hi} msgs/s`);
    ramp.push(await runPhase(mid, stepSeconds));
  }
  const passing = ramp.filter((r) => r.pass);
  const best = passing.reduce<PhaseResult | undefined>(
    (a, b) => (!a || (b.deliveriesPerSec ?? 0) > (a.deliveriesPerSec ?? 0) ? b : a),
    undefined,
  );
  // The step that failed above the best one: were this machine's cores all busy there?
  const failedAbove = ramp
    .filter((p) => !p.pass && p.targetRate > (best?.targetRate ?? 0))
    .sort((a, b) => a.targetRate - b.targetRate)[0];
  const notes = [...server.notes];
  const busy = failedAbove?.machineCpuCores ?? 0;
  if (failedAbove && busy >= 0.85 * cpus().length)
    notes.push(
      `at the failing step (${failedAbove.targetRate} msgs/s) the machine was busy ${busy} of ${cpus().length} cores (server ${failedAbove.serverCpuCores}, load processes ${failedAbove.loadCpuCores}, rest ${failedAbove.restCpuCores}): the limit found is this machine's, shared with the load processes, not the server's alone`,
    );
  else if (failedAbove && (failedAbove.serverCpuCores ?? 0) >= 0.9)
    notes.push(
      `at the failing step (${failedAbove.targetRate} msgs/s) the server's one thread was busy (${failedAbove.serverCpuCores} cores): the server is the limit`,
    );
  // Steps that failed on p99 alone, with every delivery made and CPU to spare: a latency floor, not a
  // throughput limit (the max rate at p99 <= 200 ms then says little about capacity).
  const latencyOnly = ramp.filter(
    (p) =>
      !p.pass &&
      (p.deliveredFraction ?? 0) >= 0.95 &&
      (p.sampledDeliveredFraction ?? 0) >= 0.95 &&
      p.disconnects === 0 &&
      (p.serverCpuCores ?? 1) < 0.9 &&
      (p.machineCpuCores ?? cpus().length) < 0.85 * cpus().length,
  );
  if (latencyOnly.length > 0)
    notes.push(
      `failed on latency alone at ${latencyOnly.map((p) => `${p.targetRate} (p99 ${p.latencyMs.p99} ms, server ${p.serverCpuCores} cores)`).join(', ')} msgs/s: every delivery made, CPU to spare; a latency floor, not a throughput limit`,
    );

  const final = await snapshotAll();
  const closed: Record<string, number> = {};
  const other: Record<string, number> = {};
  for (const s of final) {
    addInto(closed, s.closed);
    addInto(other, s.other);
  }
  const result: ServerResult = {
    server: server.label,
    notes,
    connectionsRequested: connections,
    connectionsJoined: joined,
    connectionsFailed: failedCount,
    connectSeconds: round(connectSeconds, 1),
    rssBeforeMiB: mib(rssBefore),
    rssIdleMiB: mib(rssIdle),
    rssPerIdleConnectionKB: round((rssIdle - rssBefore) / joined / 1024, 1),
    steady,
    ramp: ramp.slice(1),
    maxDeliveriesPerSecAtP99: best?.deliveriesPerSec ?? 0,
    maxRateAtP99: best?.targetRate ?? 0,
    maxIsLowerBound: best !== undefined && failedAbove === undefined,
    noStepPassedAt:
      best === undefined
        ? Math.min(...ramp.map((p) => p.expectedDeliveriesPerSec ?? Number.POSITIVE_INFINITY))
        : null,
    closed,
    otherFrames: other,
    clientErrors: [...new Set(final.flatMap((s) => s.errors))],
    serverLog: server.logLines.slice(0, 50),
  };

  // Stop this server's processes now (the next server gets the machine to itself).
  const mine = new Set<string>([...loads.map((l) => l.name), 'chat', 'nats-server', 'socketio-server']);
  for (let i = cleanups.length - 1; i >= 0; i--) {
    const entry = cleanups[i];
    if (entry && mine.has(entry.name)) {
      cleanups.splice(i, 1);
      await entry.stop();
    }
  }
  return result;
}

// ---------------------------------------------------------------------------------------------------------

/** A table with one column per server (and a target column). */
function printGrid(title: string, header: string[], rows: (string | number | null | undefined)[][]): void {
  const cells = [header, ...rows].map((row) =>
    row.map((cell) => (cell === null ? 'n/a' : String(cell ?? ''))),
  );
  const widths = header.map((_, i) => Math.max(...cells.map((row) => row[i]?.length ?? 0)));
  console.log(`\n${title}`);
  for (const [n, row] of cells.entries()) {
    const line = row.map((cell, i) =>
      i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0),
    );
    console.log(`  ${line.join('   ')}`.trimEnd());
    if (n === 0) console.log(`  ${widths.map((w) => '-'.repeat(w)).join('   ')}`);
  }
}

const lat = (p: PhaseResult) => `${p.latencyMs.p50} / ${p.latencyMs.p99} / ${p.latencyMs.max}`;
const perDeliveryUs = (p: PhaseResult) =>
  p.serverCpuCores !== null && p.deliveriesPerSec
    ? round((p.serverCpuCores / p.deliveriesPerSec) * 1e6, 1)
    : null;

function printRamp(r: ServerResult): void {
  printGrid(
    `bench:chat — ${r.server}: steady phase and ramp (x${STEP.toFixed(2)} per step)`,
    [
      'msgs/s',
      's',
      'in/s',
      'deliveries/s',
      'of expected',
      'frames/s',
      'p50 / p99 / max ms',
      'server CPU',
      'us/delivery',
      'load CPU',
      'rest of machine',
      'result',
    ],
    [r.steady, ...r.ramp].map((p) => [
      p.targetRate,
      p.seconds,
      p.inboundPerSec,
      p.deliveriesPerSec,
      p.deliveredFraction === null ? null : `${round(p.deliveredFraction * 100, 1)} %`,
      p.framesPerSec,
      lat(p),
      p.serverCpuCores,
      perDeliveryUs(p),
      p.loadCpuCores,
      p.restCpuCores,
      p.pass ? 'pass' : `FAIL: ${p.why}`,
    ]),
  );
}

function printDetails(r: ServerResult): void {
  const closed = Object.entries(r.closed);
  if (closed.length)
    console.log(`  ${r.server}: disconnects by close code/reason: ${JSON.stringify(r.closed)}`);
  if (Object.keys(r.otherFrames).length)
    console.log(`  ${r.server}: senders also received: ${JSON.stringify(r.otherFrames)}`);
  if (r.clientErrors.length)
    console.log(`  ${r.server}: client errors: ${r.clientErrors.slice(0, 10).join(' | ')}`);
  if (r.serverLog.length)
    console.log(`  ${r.server}: server log (first lines):\n    ${r.serverLog.slice(0, 15).join('\n    ')}`);
  for (const note of r.notes) console.log(`  ${r.server}: ${note}`);
}

const secret = randomBytes(32).toString('hex');
const loadAverageAtStart = loadavg();
const results: { ours?: ServerResult; socketio?: ServerResult } = {};
let exitCode = 0;
try {
  log(
    `bench:chat: ${connections} connections (${senderCount} senders), ${targetRate} msgs/s, steady ${steadySeconds} s, ramp steps ${stepSeconds} s, ${procs} load processes, latency from 1 in ${sample} receivers, ${cpus().length} cores, load average ${loadAverageAtStart.map((l) => l.toFixed(2)).join(' ')}`,
  );
  if (only !== 'socketio') {
    if (!existsSync(join(repoRoot, 'services', 'chat', 'src', 'main.ts')))
      throw new Error('services/chat/src/main.ts does not exist yet (use --only socketio)');
    log('--- chat (ours) ---');
    results.ours = await runServer('chat', secret);
  }
  if (only !== 'ours') {
    log(`--- Socket.IO baseline (clients: ${sioClient === 'lib' ? 'socket.io-client' : 'ws'}) ---`);
    results.socketio = await runServer('socketio', secret);
  }
} catch (error) {
  exitCode = 1;
  console.error(error instanceof Error ? error.stack : error);
} finally {
  await cleanup();
}

const { ours, socketio } = results;
/** Socket.IO passed no step, down to its lowest: its max is below that step's expected deliveries/s. */
const socketioBelow =
  socketio &&
  socketio.maxDeliveriesPerSecAtP99 === 0 &&
  Number.isFinite(socketio.noStepPassedAt ?? Number.NaN)
    ? (socketio.noStepPassedAt as number)
    : null;
const ratio =
  ours && socketio && socketio.maxDeliveriesPerSecAtP99 > 0
    ? ours.maxDeliveriesPerSecAtP99 / socketio.maxDeliveriesPerSecAtP99
    : ours && ours.maxDeliveriesPerSecAtP99 > 0 && socketioBelow
      ? ours.maxDeliveriesPerSecAtP99 / socketioBelow
      : null;
/** When a ramp ran out of steps before failing, its maximum (and so the ratio) is only a bound. */
const ratioBound =
  socketioBelow !== null
    ? '>'
    : ours?.maxIsLowerBound
      ? socketio?.maxIsLowerBound
        ? '?'
        : '>='
      : socketio?.maxIsLowerBound
        ? '<='
        : '';
const ratioText =
  ratio === null
    ? ours && socketio
      ? 'n/a (Socket.IO passed no step)'
      : 'n/a'
    : `${ratioBound === '?' ? '? ' : ratioBound ? `${ratioBound} ` : ''}${(Math.floor(ratio * 100) / 100).toFixed(2)}`;
const fullScale = connections >= 10_000 && targetRate >= 20;
const checks: Record<string, boolean | string> = {
  [`10,000 connections at 20 msgs/s with p99 <= ${P99_LIMIT_MS} ms`]: ours
    ? fullScale
      ? ours.steady.pass && ours.connectionsJoined >= 10_000
      : `not tested at full scale (${connections} connections, ${targetRate} msgs/s; ${ours.steady.pass ? 'pass' : 'fail'} at this scale)`
    : 'not run',
  [`<= 20 KB RSS per idle connection (at ${connections} connections)`]: ours
    ? (ours.rssPerIdleConnectionKB ?? Infinity) <= 20
    : 'not run',
  [`>= 2x Socket.IO's max deliveries/s at p99 <= ${P99_LIMIT_MS} ms`]:
    ratio === null
      ? 'not measured'
      : ratio >= 2 && (ratioBound === '' || ratioBound === '>=' || ratioBound === '>')
        ? true
        : ratio < 2 && (ratioBound === '' || ratioBound === '<=')
          ? false
          : `inconclusive (ratio ${ratioText}: a ramp passed every step; raise --max-steps)`,
};
const servers = [ours, socketio].filter((r): r is ServerResult => r !== undefined);
if (servers.length > 0) {
  const row = (label: string, f: (r: ServerResult) => string | number | null, target = '') => [
    label,
    ...servers.map(f),
    target,
  ];
  const steady = (label: string, f: (p: PhaseResult) => string | number | null, target = '') =>
    row(label, (r) => f(r.steady), target);
  for (const r of servers) printRamp(r);
  printGrid(
    `bench:chat — one room, ${connections} connections (${senderCount} of them senders), ${procs} load processes + 1 sender process on this machine (${cpus().length} cores)`,
    ['', ...servers.map((r) => r.server), 'target (ours)'],
    [
      row('connections joined / failed', (r) => `${r.connectionsJoined} / ${r.connectionsFailed}`, '10000'),
      row('connect time (s)', (r) => r.connectSeconds),
      row('server RSS before / after connecting (MiB)', (r) => `${r.rssBeforeMiB} / ${r.rssIdleMiB}`),
      row('RSS per idle connection (KB)', (r) => r.rssPerIdleConnectionKB, '<= 20'),
      [`steady phase: ${targetRate} msgs/s into the room for ${steadySeconds} s`],
      steady('  inbound msgs/s', (p) => p.inboundPerSec, '20'),
      steady(
        '  deliveries/s (expected)',
        (p) => `${p.deliveriesPerSec} (${p.expectedDeliveriesPerSec})`,
        '200000',
      ),
      steady('  WebSocket frames/s received', (p) => p.framesPerSec),
      steady('  send->deliver p50 / p99 / max (ms)', lat, `p99 <= ${P99_LIMIT_MS}`),
      steady('  latency samples', (p) => p.latencyMs.samples),
      steady('  server CPU (cores)', (p) => p.serverCpuCores),
      steady('  server CPU per delivery (us)', perDeliveryUs),
      steady('  server RSS (MiB)', (p) => p.serverRssMiB),
      steady('  nats-server CPU (cores)', (p) => p.helperCpuCores['nats-server'] ?? '-'),
      steady('  load processes CPU (cores)', (p) => p.loadCpuCores),
      steady('  rest of the machine CPU (cores)', (p) => p.restCpuCores),
      steady('  disconnects', (p) => p.disconnects, '0'),
      steady('  result', (p) => (p.pass ? 'pass' : 'FAIL')),
      row(`max deliveries/s at p99 <= ${P99_LIMIT_MS} ms`, (r) =>
        r.noStepPassedAt !== null
          ? `< ${r.noStepPassedAt} (no step passed)`
          : `${r.maxIsLowerBound ? '>= ' : ''}${r.maxDeliveriesPerSecAtP99}`,
      ),
      row('  at msgs/s', (r) => r.maxRateAtP99),
      ['ratio ours / Socket.IO', ...servers.map((r) => (r === ours ? ratioText : '')), '>= 2'],
    ],
  );
  for (const r of servers) printDetails(r);
  console.log('');
  for (const [name, ok] of Object.entries(checks))
    console.log(`  check: ${name}: ${typeof ok === 'boolean' ? (ok ? 'PASS' : 'FAIL') : ok}`);
}
const resultsDir = join(repoRoot, 'bench', 'results');
mkdirSync(resultsDir, { recursive: true });
const out = values.json ?? join(resultsDir, `chat-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(
  out,
  JSON.stringify(
    {
      at: new Date().toISOString(),
      options: {
        connections,
        senders: senderCount,
        rate: targetRate,
        seconds: steadySeconds,
        warmupSeconds,
        stepSeconds,
        maxSteps,
        refineSteps,
        procs,
        sample,
        concurrency,
        sioClient,
        chatEnv,
        quick,
      },
      machine: {
        cores: cpus().length,
        node: process.version,
        loadAverageAtStart,
        loadAverageAtEnd: loadavg(),
      },
      ratio: ratio === null ? null : round(ratio, 2),
      ratioBound: ratioBound || null,
      checks,
      ours: ours ?? null,
      socketio: socketio ?? null,
    },
    null,
    2,
  ),
);
console.log(`\nJSON written to ${out}`);
process.exit(exitCode);
