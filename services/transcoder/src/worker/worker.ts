// A transcoder worker: a fixed number of slots, one StreamJob per assigned stream. It registers in
// live-workers, sends a heartbeat with per-stream progress ~5/s, takes assign/revoke requests from the
// supervisor, reports ffmpeg failures, and fences itself: cut off from NATS longer than
// TRANSCODER_FENCE_MS, it kills its ffmpeg (the supervisor will have moved its streams); and when the
// assignment of a stream it runs moves to a newer epoch (it was paused, a zombie), it kills that job.
// Draining (SIGTERM or the supervisor's drain request): it reports `draining`, takes no new stream, and
// keeps each job running while the supervisor moves it (make-before-break): a new assignment that names
// this job in `handoverFrom` is not a fence; the supervisor revokes the job after its successor's first
// segment (at the latest after TRANSCODER_HANDOVER_MAX_MS the job stops by itself).
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { encode, type NatsConnection, type OrderedPublisher, publishCore, watchKv } from '@live/bus';
import {
  assignmentRecord,
  assignReply,
  assignRequest,
  buckets,
  drainReply,
  drainRequest,
  lifecycleEvent,
  revokeReply,
  revokeRequest,
  subjects,
  type TranscoderHeartbeat,
  transcoderHeartbeat,
  type WorkerRecord,
  workerRecord,
} from '@live/contracts';
import { endpoint, RequestError } from '@live/runtime';
import type { Storage } from '@live/storage';
import { Kvm } from '@nats-io/kv';
import type { Logger } from 'pino';
import type { FfmpegExit } from '../ffmpeg/ffmpeg-process.js';
import type { PartServer } from './part-server.js';
import { StreamJob } from './stream-job.js';

export interface WorkerOptions {
  nc: NatsConnection;
  events: OrderedPublisher;
  media: OrderedPublisher;
  storage: Storage;
  logger: Logger;
  workerId: string;
  slots: number;
  version: string;
  workRoot: string;
  segmentSeconds: number;
  partMs: number;
  parts: PartServer;
  preset: string;
  heartbeatMs: number;
  fenceMs: number;
  handoverMaxMs: number;
}

export class Worker {
  readonly jobs = new Map<string, StreamJob>();
  /** Jobs taken off `jobs` (revoked, moved on) whose ffmpeg and last uploads are still finishing. */
  private readonly stopping = new Set<Promise<void>>();
  private readonly heartbeat: NodeJS.Timeout;
  private fenceTimer: NodeJS.Timeout | null = null;
  private draining = false;
  private readonly log: Logger;

  constructor(private readonly o: WorkerOptions) {
    this.log = o.logger.child({ component: 'worker', workerId: o.workerId });
    this.heartbeat = setInterval(() => this.beat(), o.heartbeatMs);
    void this.watchConnection();
  }

  get free(): number {
    return this.o.slots - this.jobs.size;
  }

  /** Kills jobs whose stream was reassigned to a newer epoch (e.g. while this process was paused), unless it is a planned handover from that job. */
  async watchAssignments(): Promise<void> {
    await watchKv({
      nc: this.o.nc,
      logger: this.log,
      bucket: buckets.assignments,
      schema: assignmentRecord,
      updatesOnly: true,
      onPut: (record) => {
        const job = this.jobs.get(record.streamId);
        if (!job || record.epoch <= job.epoch) return;
        const from = record.handoverFrom;
        if (from?.workerId === this.o.workerId && from.epoch === job.epoch) {
          this.log.info(
            { streamId: job.streamId, epoch: job.epoch, newEpoch: record.epoch, to: record.workerId },
            'stream moving: this job runs until its successor has a segment',
          );
          setTimeout(() => {
            if (this.jobs.get(job.streamId) !== job) return;
            this.log.warn({ streamId: job.streamId, epoch: job.epoch }, 'handover not finished: stopping');
            void this.retire(job, 'stop').then(() => this.beat());
          }, this.o.handoverMaxMs).unref();
          return;
        }
        this.log.warn(
          { streamId: job.streamId, epoch: job.epoch, newEpoch: record.epoch, now: record.workerId },
          'stream moved on: fencing this job',
        );
        void this.retire(job, 'kill');
        this.beat();
      },
    });
  }

  /** Stop taking streams and say so in every heartbeat: the supervisor moves this worker's streams. */
  startDraining(): string[] {
    if (!this.draining) this.log.info({ streams: [...this.jobs.keys()] }, 'draining');
    this.draining = true;
    this.beat();
    return [...this.jobs.keys()];
  }

  /**
   * SIGTERM: drain, then wait until the supervisor has moved every stream away and the moved jobs have
   * finished (their last segments stored and announced before NATS closes), or `timeoutMs`.
   */
  async drain(timeoutMs: number): Promise<void> {
    this.startDraining();
    const deadline = Date.now() + timeoutMs;
    while ((this.jobs.size > 0 || this.stopping.size > 0) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    if (this.jobs.size > 0)
      this.log.warn({ streams: [...this.jobs.keys()] }, 'drain timed out: stopping the remaining streams');
  }

  /**
   * Takes a job off this worker's streams and stops it (`kill`: SIGKILL, for fencing). Resolves when ffmpeg
   * has exited; the job stays in `stopping` until its last segments are stored and announced too.
   */
  private retire(job: StreamJob, how: 'stop' | 'kill'): Promise<void> {
    if (this.jobs.get(job.streamId) === job) this.jobs.delete(job.streamId);
    let exited: Promise<void>;
    if (how === 'kill') {
      job.kill();
      exited = Promise.resolve();
    } else {
      exited = job.stop().catch(() => undefined);
    }
    // A job whose ffmpeg never started has nothing to finish.
    const tracked = exited.then(() => (job.pid === undefined ? undefined : job.finished));
    this.stopping.add(tracked);
    void tracked.finally(() => this.stopping.delete(tracked));
    return exited;
  }

  async register(): Promise<void> {
    const kv = await new Kvm(this.o.nc).open(buckets.workers);
    const record: WorkerRecord = {
      workerId: this.o.workerId,
      host: hostname(),
      pid: process.pid,
      slots: this.o.slots,
      version: this.o.version,
      startedAt: new Date().toISOString(),
    };
    await kv.put(this.o.workerId, encode(workerRecord, record));
    this.beat();
  }

  async unregister(): Promise<void> {
    const kv = await new Kvm(this.o.nc).open(buckets.workers);
    await kv.delete(this.o.workerId);
  }

  endpoints() {
    return [
      endpoint({
        name: 'assign',
        subject: subjects.ctl.transcoderAssign(this.o.workerId),
        description: 'start transcoding a stream at an epoch (supervisor only)',
        request: assignRequest,
        reply: assignReply,
        handler: async (request) => {
          const current = this.jobs.get(request.streamId);
          if (current && current.epoch === request.epoch)
            return { accepted: true as const, workerId: this.o.workerId };
          if (current && current.epoch > request.epoch) {
            throw new RequestError(
              `stale epoch ${request.epoch}: this worker runs epoch ${current.epoch}`,
              409,
            );
          }
          if (current) void this.retire(current, 'kill');
          if (this.draining) throw new RequestError('worker is draining', 409);
          if (this.free <= 0) throw new RequestError('no free slot', 409);
          const job = new StreamJob({
            ...request,
            workerId: this.o.workerId,
            workRoot: this.o.workRoot,
            segmentSeconds: this.o.segmentSeconds,
            partMs: this.o.partMs,
            parts: this.o.parts,
            nc: this.o.nc,
            preset: this.o.preset,
            storage: this.o.storage,
            media: this.o.media,
            logger: this.log,
            onExit: (j, exit) => this.jobExited(j, exit),
          });
          this.jobs.set(request.streamId, job);
          await job.start();
          this.beat();
          return { accepted: true as const, workerId: this.o.workerId };
        },
      }),
      endpoint({
        name: 'drain',
        subject: subjects.ctl.transcoderDrain(this.o.workerId),
        description: 'stop taking streams; the supervisor moves the running ones (make-before-break)',
        request: drainRequest,
        reply: drainReply,
        handler: async () => ({ draining: true as const, streams: this.startDraining() }),
      }),
      endpoint({
        name: 'revoke',
        subject: subjects.ctl.transcoderRevoke(this.o.workerId),
        description: 'stop transcoding a stream (supervisor only)',
        request: revokeRequest,
        reply: revokeReply,
        handler: async ({ streamId, epoch }) => {
          const job = this.jobs.get(streamId);
          if (!job || (epoch !== undefined && job.epoch !== epoch)) return { stopped: false };
          this.log.info({ streamId, epoch: job.epoch }, 'revoked by the supervisor: stopping the job');
          await this.retire(job, 'stop');
          this.beat();
          return { stopped: true };
        },
      }),
    ];
  }

  /** Shutdown: stop taking work, stop every job (their last segments are announced). */
  async stopAll(): Promise<void> {
    this.draining = true;
    clearInterval(this.heartbeat);
    for (const job of this.jobs.values()) void this.retire(job, 'stop');
    await Promise.all(this.stopping);
  }

  private jobExited(job: StreamJob, exit: FfmpegExit): void {
    if (this.jobs.get(job.streamId) !== job) return;
    this.jobs.delete(job.streamId);
    this.beat();
    if (exit.code === 0) {
      // The source ended (ingest closes its players at `ended`): ffmpeg finished the playlist.
      this.log.info({ streamId: job.streamId, epoch: job.epoch }, 'transcode finished: source ended');
      return;
    }
    this.log.error(
      {
        streamId: job.streamId,
        epoch: job.epoch,
        code: exit.code,
        signal: exit.signal,
        lastLines: exit.lastLines.slice(-5),
      },
      'ffmpeg failed',
    );
    const event = {
      id: randomUUID(),
      type: 'transcode_failed' as const,
      streamId: job.streamId,
      sessionId: 'transcoder',
      at: new Date().toISOString(),
      workerId: this.o.workerId,
      epoch: job.epoch,
      exitCode: exit.code,
      signal: exit.signal,
      lastLines: exit.lastLines.slice(-20),
    };
    void this.o.events.publish(
      lifecycleEvent,
      subjects.streamEvent(job.streamId, 'transcode_failed'),
      event,
      event.id,
    );
  }

  private beat(): void {
    const beat: TranscoderHeartbeat = {
      workerId: this.o.workerId,
      at: Date.now(),
      slots: this.o.slots,
      free: Math.max(0, this.free),
      draining: this.draining,
      streams: [...this.jobs.values()].map((job) => ({
        streamId: job.streamId,
        epoch: job.epoch,
        state: job.state,
        frames: job.progress.frames,
        mediaTimeMs: job.progress.mediaTimeMs,
        speed: job.progress.speed,
        lastSegmentAt: job.lastSegmentAt,
      })),
    };
    publishCore(this.o.nc, transcoderHeartbeat, subjects.transcoderHealth(this.o.workerId), beat);
  }

  /** Self-fencing: a worker that cannot reach NATS cannot know whether its streams moved; it stops. */
  private async watchConnection(): Promise<void> {
    for await (const status of this.o.nc.status()) {
      if (status.type === 'disconnect' && !this.fenceTimer) {
        this.fenceTimer = setTimeout(() => {
          this.log.error(
            { streams: [...this.jobs.keys()] },
            'cut off from NATS: fencing, stopping every ffmpeg',
          );
          for (const job of this.jobs.values()) void this.retire(job, 'kill');
        }, this.o.fenceMs);
      } else if (status.type === 'reconnect' && this.fenceTimer) {
        clearTimeout(this.fenceTimer);
        this.fenceTimer = null;
      }
    }
  }
}
