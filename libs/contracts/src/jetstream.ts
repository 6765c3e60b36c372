// Storage settings of the platform's JetStream streams and KV buckets: part of the contract, so every
// service provisions them identically (idempotently) at start-up.
import { buckets, streams, subjects } from './subjects.js';

const SECOND_NS = 1_000_000_000;
const HOUR_NS = 3600 * SECOND_NS;

/** Messages kept per room in CHAT (each one event or a group of them), and events kept in each pod's memory
 * for the rooms it serves. */
export const CHAT_ROOM_RETAINED = 1000;

export interface StreamDefinition {
  name: string;
  subjects: string[];
  /** Max age in nanoseconds. */
  maxAgeNs: number;
  /** Dedupe window for Nats-Msg-Id, nanoseconds. */
  duplicateWindowNs: number;
  /** Messages kept per subject (-1: no limit). */
  maxMsgsPerSubject?: number;
  description: string;
}

export const streamDefinitions: StreamDefinition[] = [
  {
    name: streams.events,
    subjects: [subjects.allStreamEvents, subjects.allAlerts],
    // Lifecycle history for a day: enough for the supervisor and packager to rebuild state, small on disk.
    maxAgeNs: 24 * HOUR_NS,
    duplicateWindowNs: 2 * 60 * SECOND_NS,
    description:
      'stream lifecycle (started, ended, source_stalled, source_resumed, rejected, assigned, failover, moved) and platform alerts',
  },
  {
    name: streams.media,
    subjects: [subjects.allMedia],
    // Covers the live window (tens of seconds) with a wide margin for a packager restart.
    maxAgeNs: 1 * HOUR_NS,
    duplicateWindowNs: 60 * SECOND_NS,
    description: 'segment-ready events (metadata only; media bytes go to storage)',
  },
  {
    name: streams.deadLetters,
    subjects: [subjects.allDeadLetters],
    maxAgeNs: 7 * 24 * HOUR_NS,
    duplicateWindowNs: 60 * SECOND_NS,
    description: 'messages that failed validation, with the reason',
  },
  {
    name: streams.chat,
    subjects: [subjects.allChatRooms],
    // A day of chat, and at most CHAT_ROOM_RETAINED messages per room: what history and resume can reach.
    // A pod joining a room reads that room's retained events, so the bound also bounds its start-up.
    maxAgeNs: 24 * HOUR_NS,
    duplicateWindowNs: 2 * 60 * SECOND_NS,
    maxMsgsPerSubject: CHAT_ROOM_RETAINED,
    description: 'chat room events (messages, deletions), one subject per room',
  },
];

export interface BucketDefinition {
  name: string;
  history: number;
  description: string;
  /** Entries expire this long (ms) after their last write (absent: never). */
  ttlMs?: number;
}

export const bucketDefinitions: BucketDefinition[] = [
  { name: buckets.streamKeys, history: 1, description: 'sha256(stream key) -> stream id' },
  { name: buckets.assignments, history: 5, description: 'stream id -> worker, epoch, source, ladder' },
  { name: buckets.workers, history: 1, description: 'transcoder worker -> host, pid, slots, free' },
  {
    name: buckets.leases,
    history: 1,
    description: 'leader leases: <role> -> holder and expiry (compare-and-set)',
  },
  { name: buckets.chatNodes, history: 1, description: 'chat pod -> connections, capacity, draining' },
  {
    name: buckets.chatModeration,
    history: 1,
    description:
      'chat bans, timeouts, room settings: <room>.ban.<user>, <room>.timeout.<user>, <room>.settings',
  },
  {
    name: buckets.llNumbering,
    history: 1,
    description:
      'LL-HLS numbering: <stream>.<rendition> -> epoch, sequence, media sequence, discontinuity seq',
    // Ended streams' entries go by themselves; an owner rewrites a live stream's entry every hour
    // (LL_NUMBERING_REFRESH_MS), so a stream that runs for days keeps one.
    ttlMs: 24 * 3600 * 1000,
  },
];

/** How often the owner of a stream rewrites its unchanged LL numbering (ms): well inside the bucket's TTL. */
export const LL_NUMBERING_REFRESH_MS = 3600 * 1000;
