// The HLS playlists of one stream: a master playlist and one live media playlist per rendition, built as
// hls-parser objects (never by string concatenation) from accepted segment events.
// - Fencing: a segment of an epoch older than the stream's current one is dropped (a zombie worker).
// - A new epoch starts with EXT-X-DISCONTINUITY and its own EXT-X-MAP; media sequence numbers stay
//   monotonic across epochs, the discontinuity sequence counts the discontinuities that left the window.
// - Restart: the state is rebuilt from the playlists already in storage, so numbering continues.
import type { Rendition, SegmentEvent } from '@live/contracts';
import { parse, stringify, types } from 'hls-parser';
import type { MasterPlaylist, MediaPlaylist } from 'hls-parser/types.js';

export interface Entry {
  msn: number;
  /** Discontinuity sequence number of this segment. */
  dsn: number;
  discontinuity: boolean;
  epoch: number;
  key: string;
  initKey: string;
  durationMs: number;
  programDateTime: string | null;
}

interface RenditionState {
  rendition: Rendition;
  codecs: string;
  entries: Entry[];
  nextMsn: number;
  /** dsn of the next segment before any discontinuity flag. */
  dsn: number;
  epoch: number;
  /** ffmpeg's sequence of the last accepted segment of `epoch`: anything at or below it was seen. */
  sequence: number;
  initKeys: Map<number, string>;
}

/** duplicate: already in the playlist or older than its newest segment (a redelivery or replay). */
export type AcceptResult = 'accepted' | 'fenced' | 'duplicate' | 'no-init';

export class StreamPlaylists {
  readonly renditions = new Map<string, RenditionState>();
  currentEpoch = 0;
  ended = false;
  /** Renditions expected by the current assignment (master is written once all are known). */
  expected: string[] = [];

  constructor(
    readonly streamId: string,
    private readonly windowSize: number,
  ) {}

  /** Media playlist object key of a rendition, and the master's. */
  static mediaKey = (streamId: string, rendition: string) => `${streamId}/${rendition}.m3u8`;
  static masterKey = (streamId: string) => `${streamId}/master.m3u8`;

  /** URIs in playlists are relative to the stream folder. */
  private uri(key: string): string {
    return key.slice(this.streamId.length + 1);
  }

  raiseEpoch(epoch: number): void {
    if (epoch > this.currentEpoch) this.currentEpoch = epoch;
  }

  /** Applies one segment event; returns what happened and the keys that left the window. */
  accept(event: SegmentEvent): { result: AcceptResult; removed: Entry[] } {
    if (event.epoch < this.currentEpoch) return { result: 'fenced', removed: [] };
    this.currentEpoch = event.epoch;
    let state = this.renditions.get(event.rendition.name);
    if (!state) {
      state = {
        rendition: event.rendition,
        codecs: event.codecs,
        entries: [],
        nextMsn: 0,
        dsn: 0,
        epoch: 0,
        sequence: -1,
        initKeys: new Map(),
      };
      this.renditions.set(event.rendition.name, state);
    }
    if (event.kind === 'init') {
      state.initKeys.set(event.epoch, event.key);
      state.codecs = event.codecs;
      state.rendition = event.rendition;
      return { result: 'accepted', removed: [] };
    }
    // Segments of one epoch and rendition are accepted in ffmpeg's order only: a number cannot be given
    // to a segment older than one already listed without renumbering what players have seen.
    if (event.epoch < state.epoch || (event.epoch === state.epoch && event.sequence <= state.sequence)) {
      return { result: 'duplicate', removed: [] };
    }
    const initKey = state.initKeys.get(event.epoch);
    if (!initKey) return { result: 'no-init', removed: [] };
    const discontinuity = state.entries.length > 0 && state.epoch !== event.epoch;
    if (discontinuity) state.dsn++;
    state.epoch = event.epoch;
    state.sequence = event.sequence;
    state.entries.push({
      msn: state.nextMsn++,
      dsn: state.dsn,
      discontinuity,
      epoch: event.epoch,
      key: event.key,
      initKey,
      durationMs: event.durationMs,
      programDateTime: event.programDateTime,
    });
    this.ended = false;
    const removed = state.entries.splice(0, Math.max(0, state.entries.length - this.windowSize));
    return { result: 'accepted', removed };
  }

  /** True if a playlist refers to this object now (a window segment or the init segment of one). */
  isListed(key: string): boolean {
    for (const state of this.renditions.values()) {
      if (state.entries.some((e) => e.key === key || e.initKey === key)) return true;
      if (state.initKeys.get(this.currentEpoch) === key) return true;
    }
    return false;
  }

  /** Init segments no longer referenced by any rendition's window (deletable). */
  unusedInitKeys(): string[] {
    const unused: string[] = [];
    for (const state of this.renditions.values()) {
      const inUse = new Set(state.entries.map((e) => e.initKey));
      for (const [epoch, key] of state.initKeys) {
        if (epoch < this.currentEpoch && !inUse.has(key)) {
          unused.push(key);
          state.initKeys.delete(epoch);
        }
      }
    }
    return unused;
  }

  /** True once every rendition the assignment expects has its codecs (from its init segment). */
  masterReady(): boolean {
    const known = [...this.renditions.values()].filter((r) => r.codecs);
    if (known.length === 0) return false;
    return this.expected.every((name) => this.renditions.get(name)?.codecs);
  }

  masterPlaylist(): string {
    const variants = [...this.renditions.values()]
      .filter((r) => r.codecs && r.entries.length + r.initKeys.size > 0)
      .sort((a, b) => b.rendition.height - a.rendition.height)
      .map((r) => {
        const kbps = r.rendition.videoKbps + r.rendition.audioKbps;
        return new types.Variant({
          uri: `${r.rendition.name}.m3u8`,
          // Peak: the encoder's maxrate (+7 %) plus audio and ~10 % fMP4 overhead.
          bandwidth: Math.round((r.rendition.videoKbps * 1.07 + r.rendition.audioKbps) * 1000 * 1.1),
          averageBandwidth: Math.round(kbps * 1000 * 1.05),
          resolution: { width: r.rendition.width, height: r.rendition.height },
          frameRate: r.rendition.fps,
          codecs: r.codecs,
        });
      });
    const master: MasterPlaylist = new types.MasterPlaylist({
      version: 7,
      independentSegments: true,
      variants,
    });
    // RFC 8216: every line ends with a line feed (hls-parser leaves the last one off).
    return `${stringify(master)}\n`;
  }

  mediaPlaylist(renditionName: string): string {
    const state = this.renditions.get(renditionName);
    if (!state) throw new Error(`unknown rendition ${renditionName}`);
    const first = state.entries[0];
    const maxDuration = Math.max(1, ...state.entries.map((e) => e.durationMs / 1000));
    const segments = state.entries.map(
      (e, i) =>
        new types.Segment({
          uri: this.uri(e.key),
          duration: e.durationMs / 1000,
          mediaSequenceNumber: e.msn,
          discontinuitySequence: e.dsn,
          // A discontinuity before the first segment in the window means nothing to a joining player.
          discontinuity: i > 0 && e.discontinuity,
          // EXT-X-MAP on the first segment and wherever the init segment changes.
          map:
            i === 0 || state.entries[i - 1]?.initKey !== e.initKey
              ? new types.MediaInitializationSection({ uri: this.uri(e.initKey) })
              : undefined,
          programDateTime: e.programDateTime ? new Date(e.programDateTime) : undefined,
        }),
    );
    const playlist: MediaPlaylist = new types.MediaPlaylist({
      version: 7,
      independentSegments: true,
      // RFC 8216: every EXTINF rounded to the nearest integer must be <= TARGETDURATION.
      targetDuration: Math.max(1, Math.round(maxDuration)),
      mediaSequenceBase: first?.msn ?? state.nextMsn,
      discontinuitySequenceBase: first?.dsn ?? state.dsn,
      endlist: this.ended,
      segments,
    });
    return `${stringify(playlist)}\n`;
  }

  /** Program date time of the newest segment of any rendition (where a replay must start). */
  newestProgramDateTime(): number | null {
    const times = [...this.renditions.values()].flatMap((r) =>
      r.entries.map((e) => (e.programDateTime ? Date.parse(e.programDateTime) : 0)),
    );
    return times.length > 0 ? Math.max(...times) : null;
  }

  /** Rebuilds a rendition's state from the media playlist found in storage (packager restart). */
  restore(rendition: Rendition, codecs: string, text: string): void {
    const playlist = parse(text) as MediaPlaylist;
    if (playlist.isMasterPlaylist) return;
    const entries: Entry[] = [];
    let initKey = '';
    const initKeys = new Map<number, string>();
    for (const s of playlist.segments) {
      if (s.map) initKey = `${this.streamId}/${s.map.uri}`;
      const epoch = Number(s.uri.split('/')[0]);
      initKeys.set(epoch, initKey);
      entries.push({
        msn: s.mediaSequenceNumber,
        dsn: s.discontinuitySequence,
        discontinuity: Boolean(s.discontinuity),
        epoch,
        key: `${this.streamId}/${s.uri}`,
        initKey,
        durationMs: Math.round(s.duration * 1000),
        programDateTime: s.programDateTime ? s.programDateTime.toISOString() : null,
      });
    }
    const last = entries[entries.length - 1];
    this.renditions.set(rendition.name, {
      rendition,
      codecs,
      entries,
      nextMsn: last ? last.msn + 1 : (playlist.mediaSequenceBase ?? 0),
      dsn: last?.dsn ?? playlist.discontinuitySequenceBase ?? 0,
      epoch: last?.epoch ?? 0,
      sequence: last ? Number(/seg_(\d+)\.m4s$/.exec(last.key)?.[1] ?? -1) : -1,
      initKeys,
    });
    if (last) this.raiseEpoch(last.epoch);
    this.ended = playlist.endlist;
  }
}
