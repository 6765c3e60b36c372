// The gateway's HTTP contract with the pages: request bodies (zod, validated by the gateway) and the JSON
// the pages receive (types only, so the pages' bundles carry no zod). Shared by src/ and client/.
import { CHAT_ROLES, roomId, streamId } from '@live/contracts';
import { z } from 'zod';

export const loginRequest = z.object({ token: z.string().min(1).max(512) }).strict();

/** POST /api/studio/keys and /api/studio/keys/rotate. */
export const keyRequest = z
  .object({ streamId, label: z.string().trim().min(1).max(100).optional() })
  .strict();

/** POST /api/chat/token: a guest viewer token (local mode), or a moderator/streamer token for admins. */
export const chatTokenRequest = z
  .object({
    room: roomId,
    name: z.string().trim().min(1).max(40).optional(),
    role: z.enum(CHAT_ROLES).default('viewer'),
  })
  .strict();

export type AuthMode = 'token' | 'none';

/** GET /api/config: what a page needs to run. */
export interface PageConfig {
  /** HLS base: `${hlsBase}/<streamId>/master.m3u8`. */
  hlsBase: string;
  /** LL-HLS base: `${llHlsBase}/<streamId>/master.m3u8`; null when only plain HLS is offered. */
  llHlsBase: string | null;
  /** Chat WebSocket base: `${chatUrl}/<room>`. */
  chatUrl: string;
  rtmpUrl: string;
  auth: AuthMode;
  /** This request may use the studio and ops APIs. */
  admin: boolean;
  guestChat: boolean;
  limits: { maxSourceKbps: number; maxKeyframeMs: number };
}

export interface ErrorBody {
  error: string;
}

export interface KeyReply {
  streamId: string;
  streamKey: string;
  keyId: string;
  rtmpUrl: string;
  /** Keys revoked first (rotate). */
  revoked: number;
}

export interface ChatTokenReply {
  token: string;
  expiresAt: number;
  userId: string;
  name: string;
}

export type StreamStateName = 'offline' | 'live' | 'ended';

/** SSE `state` on /api/events?stream=<id>: what a viewer's page shows instead of a broken player. */
export interface StreamState {
  streamId: string;
  state: StreamStateName;
  /** The streamer's uplink stalled or dropped (reconnect grace running). */
  sourceStalled: boolean;
  /** The last lifecycle event and when (ISO). */
  lastEvent: string | null;
  lastEventAt: string | null;
  /** ms since epoch of the current session's start (live) or of its end (ended). */
  since: number | null;
}

/** SSE `health` on /api/studio/events?stream=<id> (admin): the source as ingest sees it, ~5/s. */
export interface SourceHealth {
  at: number;
  kbps: number;
  fps: number;
  keyframeIntervalMs: number | null;
  silentForMs: number;
  state: 'live' | 'stalled' | 'reconnecting';
}

export interface FleetStream {
  streamId: string;
  state: StreamStateName;
  sourceStalled: boolean;
  workerId: string | null;
  epoch: number | null;
  renditions: string[];
  /** Moving (make-before-break) from this worker. */
  handoverFrom: string | null;
  source: SourceHealth | null;
  encoder: { speed: number; state: string; lastSegmentAgoMs: number | null } | null;
}

export interface FleetWorker {
  workerId: string;
  slots: number;
  free: number;
  draining: boolean;
  /** A heartbeat within the last 1.5 s. */
  alive: boolean;
  lastSeenAgoMs: number;
  streams: string[];
}

export interface FleetChatPod {
  podId: string;
  connections: number;
  capacity: number;
  draining: boolean;
  alive: boolean;
}

export interface FleetFailover {
  id: string;
  type: 'failover' | 'moved';
  streamId: string;
  at: string;
  fromWorker: string;
  toWorker: string;
  reason: string;
  epoch: number;
  detectionMs: number | null;
  switchMs: number;
  handoverMs: number | null;
  gapless: boolean | null;
}

/** A stream waiting for a transcoder worker with a free slot (live.alert.placement.<streamId>). */
export interface FleetWaiting {
  streamId: string;
  /** ms since epoch. */
  since: number;
  waitingMs: number;
}

/** SSE `fleet` on /api/fleet (admin). */
export interface FleetSnapshot {
  at: number;
  streams: FleetStream[];
  workers: FleetWorker[];
  chatPods: FleetChatPod[];
  failovers: FleetFailover[];
  /** Longest-waiting first (the order they are placed in). */
  waiting: FleetWaiting[];
  /**
   * The local runner's processes (`npm start`, live.health.local), while it publishes them; empty on
   * Kubernetes, where `kubectl get pods` shows restarts.
   */
  processes: FleetProcess[];
}

/** A process of the local runner: its state and how often it was restarted. */
export interface FleetProcess {
  name: string;
  kind: string;
  pid: number | null;
  state: 'running' | 'backoff' | 'stopped';
  restarts: number;
  /** How long its current run has lasted (ms), null while it waits to be started again. */
  upMs: number | null;
  /** Its last exit: the code or signal, and how long ago (ms). */
  lastExit: { code: number | null; signal: string | null; agoMs: number } | null;
}

/** SSE `lifecycle` on /api/studio/events (admin): the stream's lifecycle events as stored in LIVE_EVENTS. */
export type { LifecycleEvent as LifecycleEventView } from '@live/contracts';
