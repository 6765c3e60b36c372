// A chaos run on the local fleet: streams published like OBS through the RTMP balancer, watched in HLS and
// LL-HLS through the origin balancer, chat rooms in use through the chat balancer, while faults are injected
// (SIGKILL or SIGSTOP of a service process, SIGKILL of a NATS node, a publisher's connection cut, malformed
// requests to every listening port). It measures what viewers see per fault and counts the invariants the
// platform promises. `npm run chaos` (a benchmark) and tests/e2e/chaos.test.ts drive it.
import { readdirSync, readFileSync } from 'node:fs';
import { buckets, subjects } from '@live/contracts';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { ChatMember, ObsPublisher, PlaylistViewer } from './chaos-actors.js';
import {
  type ChaosReport,
  FAULT_KINDS,
  type FaultKind,
  INVARIANTS,
  type Invariant,
  quantile,
} from './chaos-report.js';
import type { LocalPlatform, LocalProcess, ServiceKind } from './local-platform.js';
import { sendMalformedRequests } from './malformed.js';
import { waitFor } from './wait.js';

/** How long a SIGSTOPped process stays stopped before SIGCONT. */
export const STOP_MS = 5000;
/** A stream whose publisher is live may go this long without a new segment before it counts as untranscoded. */
const UNTRANSCODED_MS = 10_000;
/** A process may be not ready this long (its restart back-off and start) before it counts as staying down. */
const DOWN_MS = 30_000;

export interface Fault {
  kind: FaultKind;
  target: string;
  at: number;
  /** Publisher cuts: the stream. */
  streamId?: string;
}

interface Stream {
  id: string;
  publisher: ObsPublisher;
  hls: PlaylistViewer;
  ll: PlaylistViewer;
  chat: ChatMember[];
  untranscodedSince: number | null;
}

export interface ChaosOptions {
  platform: LocalPlatform;
  streams: number;
  /** The rendition whose media playlists viewers poll. */
  rendition: string;
  source: { width: number; height: number };
  log: (line: string) => void;
}

const SERVICE_KINDS: Exclude<ServiceKind, 'nats'>[] = [
  'transcoder',
  'packager',
  'supervisor',
  'ingest',
  'chat',
  'web',
];
const pick = <T>(list: T[]): T => list[Math.floor(Math.random() * list.length)] as T;

export class ChaosRun {
  readonly faults: Fault[] = [];
  readonly violations: { invariant: Invariant; at: number; detail: string }[] = [];
  readonly startedAt = Date.now();
  private readonly down = new Map<string, number>();
  private readonly cpu = new Map<string, number>();
  private readonly lastTicks = new Map<number, { name: string; ticks: number }>();
  private timers: NodeJS.Timeout[] = [];
  private rotation = 0;

  private constructor(
    private readonly o: ChaosOptions,
    private readonly nc: NatsConnection,
    readonly streams: Stream[],
  ) {}

  /** Creates keys, starts publishers, viewers and chat members, and waits until every stream plays. */
  static async start(o: ChaosOptions): Promise<ChaosRun> {
    const { ports } = o.platform;
    const nc = await connect({ servers: o.platform.natsUrls, name: 'chaos', maxReconnectAttempts: -1 });
    const origin = `http://127.0.0.1:${ports.origin}`;
    const streams: Stream[] = [];
    for (let i = 1; i <= o.streams; i++) {
      const id = `chaos-${i}`;
      const reply = await nc.request(subjects.ctl.keysCreate, JSON.stringify({ streamId: id }), {
        timeout: 5000,
      });
      const { streamKey } = reply.json<{ streamKey: string }>();
      const token = async () => {
        const res = await fetch(`http://127.0.0.1:${ports.web}/api/chat/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ room: id }),
        });
        if (!res.ok) throw new Error(`guest token: HTTP ${res.status}`);
        return ((await res.json()) as { token: string }).token;
      };
      streams.push({
        id,
        publisher: new ObsPublisher(`rtmp://127.0.0.1:${ports.rtmp}/live/${streamKey}`, o.source),
        hls: new PlaylistViewer(origin, `/hls/${id}/${o.rendition}.m3u8`, false),
        ll: new PlaylistViewer(origin, `/ll/${id}/${o.rendition}.m3u8`, true),
        chat: [0, 1].map(
          (m) => new ChatMember(`ws://127.0.0.1:${ports.chat}/chat/${id}`, token, `${id}-m${m}`),
        ),
        untranscodedSince: null,
      });
    }
    const run = new ChaosRun(o, nc, streams);
    for (const s of streams) {
      s.hls.start();
      s.ll.start();
    }
    await waitFor(() => streams.every((s) => s.hls.watch.news.length >= 2 && s.ll.watch.news.length >= 2), {
      timeoutMs: 60_000,
      intervalMs: 100,
      what: 'every stream listed in HLS and LL-HLS',
    });
    await Promise.all(streams.flatMap((s) => s.chat.map((m) => m.start())));
    run.timers.push(setInterval(() => void run.checkProcesses(), 1000));
    run.timers.push(setInterval(() => run.checkStreams(), 500));
    run.timers.push(setInterval(() => run.sampleCpu(), 2000));
    o.log(`chaos: ${streams.length} streams live and watched, chat in every room`);
    return run;
  }

  private violation(invariant: Invariant, detail: string, at = Date.now()): void {
    this.violations.push({ invariant, at, detail });
    this.o.log(`chaos: INVARIANT BROKEN ${invariant}: ${detail}`);
  }

  /** Every process answers its readiness check within DOWN_MS of going down. */
  private async checkProcesses(): Promise<void> {
    await Promise.all(
      this.o.platform.processes.map(async (p) => {
        const path = p.kind === 'nats' ? '/healthz' : '/readyz';
        const ok = await fetch(`http://127.0.0.1:${p.opsPort}${path}`, { signal: AbortSignal.timeout(800) })
          .then((r) => r.ok)
          .catch(() => false);
        const since = this.down.get(p.name);
        if (ok) this.down.delete(p.name);
        else if (since === undefined) this.down.set(p.name, Date.now());
        else if (since > 0 && Date.now() - since > DOWN_MS) {
          this.violation('process_down', `${p.name} not ready for ${DOWN_MS / 1000} s`);
          this.down.set(p.name, -1);
        }
      }),
    );
  }

  private checkStreams(): void {
    const now = Date.now();
    for (const s of this.streams) {
      const live = s.publisher.liveSince();
      // Transcoded media shows as a new HLS segment or a new LL-HLS part (parts come from the worker over core
      // NATS, so they go on while a JetStream election holds the HLS playlists: that is a gap, counted there).
      const lastMediaAt = Math.max(s.hls.watch.lastNewAt, s.ll.watch.lastNewAt);
      const stale = now - lastMediaAt > UNTRANSCODED_MS;
      if (live !== null && now - live > UNTRANSCODED_MS && stale) {
        if (s.untranscodedSince === null)
          this.violation('untranscoded', `${s.id}: no new segment or part for 10 s`);
        s.untranscodedSince ??= now;
      } else if (!stale) s.untranscodedSince = null;
    }
  }

  /** CPU seconds per process name, each process with its children (a transcoder's ffmpeg). */
  private sampleCpu(): void {
    const parents = new Map<number, number>();
    const ticks = new Map<number, number>();
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        parents.set(Number(entry), Number(fields[1]));
        ticks.set(Number(entry), Number(fields[11]) + Number(fields[12]));
      } catch {
        // gone meanwhile
      }
    }
    const owner = new Map<number, string>();
    for (const p of this.o.platform.processes) owner.set(p.process.current().pid, p.name);
    for (const [pid, total] of ticks) {
      let name: string | undefined;
      for (let up: number | undefined = pid; up && !name; up = parents.get(up)) name = owner.get(up);
      if (!name) continue;
      const before = this.lastTicks.get(pid)?.ticks ?? 0;
      this.cpu.set(name, (this.cpu.get(name) ?? 0) + (total - before) / 100);
      this.lastTicks.set(pid, { name, ticks: total });
    }
  }

  /** The process a kill or stop fault hits: each service kind in turn; the active worker or the leader. */
  private async target(
    kind?: Exclude<ServiceKind, 'nats'>,
    leader = Math.random() < 0.5,
  ): Promise<LocalProcess> {
    const service =
      kind ?? (SERVICE_KINDS[this.rotation++ % SERVICE_KINDS.length] as Exclude<ServiceKind, 'nats'>);
    const replicas = this.o.platform.processes.filter((p) => p.kind === service);
    const kvm = new Kvm(this.nc);
    if (service === 'transcoder') {
      const kv = await kvm.open(buckets.assignments);
      const workers = await Promise.all(
        this.streams.map(async (s) => (await kv.get(s.id))?.json<{ workerId: string }>()),
      );
      const active = replicas.filter((p) =>
        workers.some((w) => w && `transcoder-${w.workerId.split('-')[1]}` === p.name),
      );
      if (active.length > 0) return pick(active);
    }
    if ((service === 'supervisor' || service === 'packager') && leader) {
      const lease = await (await kvm.open(buckets.leases)).get(service);
      const pid = Number(lease?.json<{ holder: string }>().holder.split('-')[0]);
      const leader = replicas.find((p) => p.process.current().pid === pid);
      if (leader) return leader;
    }
    return pick(replicas);
  }

  /** Injects one fault; returns once it has been done (a stop: after SIGCONT). */
  async inject(kind: FaultKind, service?: Exclude<ServiceKind, 'nats'>, leader?: boolean): Promise<Fault> {
    const fault: Fault = { kind, target: '', at: Date.now() };
    this.faults.push(fault);
    if (kind === 'kill' || kind === 'stop') {
      const p = await this.target(service, leader);
      const child = p.process.current();
      fault.target = p.name;
      fault.at = Date.now();
      if (kind === 'kill') child.signal('SIGKILL');
      else {
        child.signal('SIGSTOP');
        await new Promise((resolve) => setTimeout(resolve, STOP_MS));
        child.signal('SIGCONT');
      }
    } else if (kind === 'nats') {
      const node = pick(this.o.platform.processes.filter((p) => p.kind === 'nats'));
      fault.target = node.name;
      node.process.current().signal('SIGKILL');
    } else if (kind === 'publisher') {
      const stream = pick(this.streams);
      fault.target = `publisher ${stream.id}`;
      fault.streamId = stream.id;
      stream.publisher.cut();
    } else {
      const ports = [
        ...this.o.platform.processes.flatMap((p) => p.listens),
        ...this.o.platform.balancers.map((b) => b.port),
      ];
      fault.target = `${ports.length} ports`;
      await Promise.all(ports.map((port) => sendMalformedRequests(port)));
    }
    this.o.log(`chaos: fault ${kind} -> ${fault.target}`);
    return fault;
  }

  /** Waits until every process is ready and every stream listed `segments` new segments after `since`. */
  async recovered(since: number, segments = 2, timeoutMs = 60_000): Promise<void> {
    await waitFor(
      () =>
        this.down.size === 0 &&
        this.streams.every(
          (s) =>
            s.hls.watch.news.filter((n) => n.at > since).length >= segments &&
            s.ll.watch.news.filter((n) => n.at > since).length >= segments,
        ),
      { timeoutMs, intervalMs: 200, what: 'every process ready and every stream moving on' },
    );
  }

  /** Ends the run: chat stops sending, every acked message must reach every member; viewers stop. */
  async finish(): Promise<ChaosReport> {
    const end = Date.now();
    for (const s of this.streams) for (const m of s.chat) m.quiet();
    for (const s of this.streams) {
      const acked = new Set(s.chat.flatMap((m) => m.acked));
      await waitFor(() => s.chat.every((m) => [...acked].every((seq) => m.received.has(seq))), {
        timeoutMs: 15_000,
        what: `every acked message of ${s.id} at every member`,
      }).catch(() => {
        for (const m of s.chat) {
          const missing = [...acked].filter((seq) => !m.received.has(seq));
          if (missing.length > 0)
            this.violation('chat_lost', `${s.id}: a member never got seqs ${missing.join(',')}`);
        }
      });
    }
    for (const t of this.timers) clearInterval(t);
    for (const s of this.streams) {
      s.hls.stop();
      s.ll.stop();
      for (const m of s.chat) m.close();
    }
    // What viewers saw: an ENDLIST, going backwards, an older epoch, a lost segment (once per kind and detail).
    const seen = new Set<string>();
    for (const s of this.streams)
      for (const v of [...s.hls.watch.violations, ...s.ll.watch.violations]) {
        if (!seen.has(`${v.kind} ${v.detail}`)) this.violation(v.kind, v.detail, v.at);
        seen.add(`${v.kind} ${v.detail}`);
      }
    const report = this.report(end);
    await Promise.all(this.streams.map((s) => s.publisher.stop()));
    await this.nc.close();
    return report;
  }

  private report(end: number): ChaosReport {
    // The gap viewers see at a fault: per stream, the stretch with no new media that contains the fault's
    // moment, from the last segment (or part) before it to the first after; the worst stream counts. A stretch
    // that began before the previous fault is that fault's (faults come every 10-20 s, a stall can be longer):
    // not counted again.
    const gapAt = (fault: Fault, watch: 'hls' | 'll'): number | null => {
      const previous = this.faults[this.faults.indexOf(fault) - 1];
      const gaps = this.streams.flatMap((s) => {
        const next = s[watch].watch.news.find((n) => n.at > fault.at);
        if (!next || (previous && next.at - next.gapMs <= previous.at)) return [];
        return [next.gapMs];
      });
      return gaps.length > 0 ? Math.max(...gaps) : null;
    };
    const reconnectToSegment = (fault: Fault): number | null => {
      const s = this.streams.find((x) => x.id === fault.streamId);
      const back = s?.publisher.reconnects.find((t) => t > fault.at);
      if (!s || back === undefined) return null;
      const before = s.hls.watch.news.filter((n) => n.at <= fault.at).at(-1)?.epoch ?? 0;
      const first = s.hls.watch.news.find((n) => n.at > back && n.epoch > before);
      return first ? first.at - back : null;
    };
    const byKind = Object.fromEntries(
      FAULT_KINDS.map((kind) => {
        const faults = this.faults.filter((f) => f.kind === kind);
        const seg = faults.map((f) => gapAt(f, 'hls'));
        const part = faults.map((f) => gapAt(f, 'll'));
        const measured = (v: (number | null)[]) => v.filter((x): x is number => x !== null);
        const reconnect = faults.map(reconnectToSegment).filter((v): v is number => v !== null);
        const stats = (v: number[]) => ({
          p50: quantile(v, 0.5),
          p95: quantile(v, 0.95),
          max: v.length ? Math.max(...v) : null,
        });
        return [
          kind,
          {
            count: faults.length,
            targets: faults.map((f) => f.target),
            each: faults.map((f, i) => ({
              target: f.target,
              segmentGapMs: seg[i] ?? 0,
              partGapMs: part[i] ?? 0,
            })),
            segmentGapMs: stats(measured(seg)),
            partGapMs: stats(measured(part)),
            ...(kind === 'publisher' ? { reconnectToSegmentMs: stats(reconnect) } : {}),
          },
        ];
      }),
    ) as ChaosReport['faults'];
    const invariants = Object.fromEntries(
      INVARIANTS.map((i) => [i, this.violations.filter((v) => v.invariant === i).length]),
    ) as Record<Invariant, number>;
    const restarts = Object.fromEntries(this.o.platform.status().map((s) => [s.name, s.restarts]));
    const seconds = (end - this.startedAt) / 1000;
    return {
      seconds,
      faults: byKind,
      invariants,
      violations: this.violations.map((v) => `${new Date(v.at).toISOString()} ${v.invariant}: ${v.detail}`),
      restarts,
      cpuSeconds: Object.fromEntries([...this.cpu].map(([k, v]) => [k, Math.round(v * 10) / 10])),
      cpuCores: Math.round(([...this.cpu.values()].reduce((a, b) => a + b, 0) / seconds) * 100) / 100,
      publisherDrops: Object.fromEntries(this.streams.map((s) => [s.id, s.publisher.drops.length])),
      chat: Object.fromEntries(
        this.streams.map((s) => [
          s.id,
          {
            acked: s.chat.reduce((n, m) => n + m.acked.length, 0),
            reconnects: s.chat.reduce((n, m) => n + m.reconnects, 0),
            gaps: s.chat.reduce((n, m) => n + m.gaps, 0),
          },
        ]),
      ),
      playlistReads: this.streams.reduce((n, s) => n + s.hls.watch.reads + s.ll.watch.reads, 0),
      playlistErrors: this.streams.reduce((n, s) => n + s.hls.watch.errors + s.ll.watch.errors, 0),
    };
  }
}
