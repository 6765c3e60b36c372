// The video player: hls.js in one of two modes. Plain HLS at its default live sync (3 target durations
// behind the edge, 3 s), or LL-HLS (lowLatencyMode against the origin's /ll/: blocking playlist reloads and
// 200 ms parts, at the playlist's PART-HOLD-BACK behind the edge, about 1 s). Then: quality choice
// (auto or one rendition), the live-edge indicator with "go live", the measured latency, and the wall clock
// of the frame on screen (EXT-X-PROGRAM-DATE-TIME via hls.playingDate) that the chat is held back to.
// Stalls (hls.js BUFFER_STALLED_ERROR) and `waiting` events after playback started are counted, because a
// failover the viewer notices is exactly one of those.
import Hls, { type ErrorData, FetchLoader, type Level, type LoaderContext } from 'hls.js';

/**
 * Rebuilding the buffer after a failover. While the standby takes over, the playlist stops growing for a
 * second or two but the picture keeps playing from the buffer, so afterwards the player sits that much
 * closer to the live edge, and hls.js never drifts back (it only speeds up, never slows down). A second
 * failover soon after would then find too little buffer and stall. So when the latency is clearly below
 * hls.js's target (3 segments), or the buffer runs low, the picture plays a little slower (pitch is kept)
 * until the target is back: 2 s are regained in about 13 s. In LL-HLS the buffer is only ~1 s (the
 * playlist's PART-HOLD-BACK) and a failover leaves ~1.2 s without new parts (bench:llhls), so the player
 * slows down harder and earlier there: from 0.5 s of buffer at 0.75x, 0.5 s of buffer lasts 0.67 s.
 */
const MODE = {
  plain: { rebuildRate: 0.85, lowBufferS: 0.8, catchUpRate: 1 },
  /**
   * LL-HLS also catches up (1.1x) when more than CATCH_UP_ABOVE_S behind its target with buffer to spare:
   * hls.js's own catch-up (maxLiveSyncPlaybackRate) only starts with more than 1 s of buffer, which LL-HLS
   * never has, and it resets any other playback rate on every timeupdate, so it stays off.
   */
  low: { rebuildRate: 0.75, lowBufferS: 0.5, catchUpRate: 1.1 },
};
const CATCH_UP_ABOVE_S = 0.3;
const CATCH_UP_UNTIL_S = 0.05;
/** Slow down when the latency is this far below the target... */
const REBUILD_BELOW_S = 0.25;
/**
 * ...and play at normal speed again once this close to it. The two thresholds leave room for hls.js's
 * latency estimate to jitter without the rate flapping, and a player that is not rebuilding is always
 * within REBUILD_BELOW_S of its target (`settled`): there is no band where it is short and does nothing.
 */
const REBUILD_UNTIL_S = 0.02;

export interface PlayerStats {
  /** hls.js BUFFER_STALLED_ERROR after the first frame played. */
  stalls: number;
  /** <video> `waiting` events after the first frame played. */
  waiting: number;
  /** Fatal errors seen (recovered or not). */
  fatal: string[];
  /** Every hls.js error detail, for diagnosis. */
  errors: string[];
  /** ms since page load when the first frame played. */
  playingSince: number | null;
  /** Times the player slowed down to rebuild its buffer (after a failover). */
  rebuilds: number;
}

export interface PlayerEvents {
  /** The playlist is not there yet (the stream is starting) or went away. */
  onUnavailable(reason: string): void;
  onPlaying(): void;
  onLevels(levels: { index: number; name: string }[]): void;
  onLevelSwitched(): void;
  /** The media ended (ENDLIST reached): the stream is over. */
  onEnded(): void;
}

const isPlaylist = (context: LoaderContext) => /\.m3u8(\?|$)/.test(context.url);

const levelName = (level: Level | undefined) => (level ? `${level.height}p` : '?');

export class Player {
  readonly stats: PlayerStats = {
    stalls: 0,
    waiting: 0,
    fatal: [],
    errors: [],
    playingSince: null,
    rebuilds: 0,
  };
  private rebuilding = false;
  private catchingUp = false;
  private hls: Hls | null = null;
  private retry: number | undefined;
  private destroyed = false;
  private readonly interval: number;
  /** Removes this player's <video> listeners when it is destroyed (the page may switch players). */
  private readonly listening = new AbortController();

  constructor(
    readonly video: HTMLVideoElement,
    private readonly src: string,
    private readonly events: PlayerEvents,
    /** LL-HLS: hls.js lowLatencyMode (src must be an LL-HLS playlist). */
    readonly lowLatency = false,
  ) {
    const { signal } = this.listening;
    video.addEventListener(
      'playing',
      () => {
        if (this.stats.playingSince === null) this.stats.playingSince = performance.now();
        this.events.onPlaying();
      },
      { signal },
    );
    video.addEventListener(
      'waiting',
      () => {
        if (this.stats.playingSince !== null) this.stats.waiting++;
      },
      { signal },
    );
    video.addEventListener('ended', () => this.events.onEnded(), { signal });
    this.interval = window.setInterval(() => this.keepLatency(), 100);
  }

  /** True while the picture plays slower to get back to the target latency. */
  get isRebuilding(): boolean {
    return this.rebuilding;
  }

  /** Playing at normal speed within REBUILD_BELOW_S of hls.js's target latency (its full buffer). */
  get settled(): boolean {
    const target = this.hls?.targetLatency;
    const latency = this.latency;
    return !this.rebuilding && !!target && latency !== null && latency >= target - REBUILD_BELOW_S;
  }

  private keepLatency(): void {
    const hls = this.hls;
    const target = hls?.targetLatency;
    const latency = this.latency;
    if (!hls || !target || latency === null || this.video.paused || this.stats.playingSince === null) {
      if (this.rebuilding || this.catchingUp) this.setRate('normal');
      return;
    }
    const mode = MODE[this.lowLatency ? 'low' : 'plain'];
    const v = this.video;
    const ahead = v.buffered.length > 0 ? v.buffered.end(v.buffered.length - 1) - v.currentTime : 0;
    if (!this.rebuilding && (latency < target - REBUILD_BELOW_S || ahead < mode.lowBufferS))
      this.setRate('rebuild');
    else if (this.rebuilding && latency >= target - REBUILD_UNTIL_S && ahead >= mode.lowBufferS)
      this.setRate('normal');
    else if (
      !this.rebuilding &&
      !this.catchingUp &&
      mode.catchUpRate > 1 &&
      latency > target + CATCH_UP_ABOVE_S &&
      ahead > mode.lowBufferS + 0.3
    )
      this.setRate('catch-up');
    else if (this.catchingUp && (latency <= target + CATCH_UP_UNTIL_S || ahead < mode.lowBufferS + 0.1))
      this.setRate('normal');
  }

  private setRate(rate: 'normal' | 'rebuild' | 'catch-up'): void {
    const mode = MODE[this.lowLatency ? 'low' : 'plain'];
    if (rate === 'rebuild' && !this.rebuilding) this.stats.rebuilds++;
    this.rebuilding = rate === 'rebuild';
    this.catchingUp = rate === 'catch-up';
    this.video.playbackRate =
      rate === 'rebuild' ? mode.rebuildRate : rate === 'catch-up' ? mode.catchUpRate : 1;
    this.video.dataset.rebuilding = String(this.rebuilding);
  }

  get instance(): Hls | null {
    return this.hls;
  }

  get started(): boolean {
    return this.hls !== null;
  }

  start(): void {
    if (this.hls || this.destroyed) return;
    if (!Hls.isSupported()) {
      this.events.onUnavailable('this browser cannot play HLS with Media Source Extensions');
      return;
    }
    const hls = new Hls({
      // Plain HLS: liveSyncDurationCount 3 is what the zero-stall failover test holds us to. LL-HLS: the
      // target latency is the playlist's PART-HOLD-BACK (set by the origin), so no live sync is configured.
      // LL-HLS: each stall raises hls.js's target latency by 0.25 s (its default, 1 s, capped at one target
      // duration, would leave a viewer a whole second later for the rest of the session after a single
      // stall at start-up, measured in bench:llhls); the player's own rebuild keeps the buffer healthy.
      ...(this.lowLatency
        ? { lowLatencyMode: true, liveSyncOnStallIncrease: 0.25 }
        : { lowLatencyMode: false, liveSyncDurationCount: 3 }),
      enableWorker: true,
      backBufferLength: 30,
      // Playlists bypass the browser's HTTP cache. They are served with max-age=1 (right for a CDN), but a
      // reload a little under a second after the last one would get the browser's stale copy, so the player
      // would learn of each new segment up to a reload period late: a smaller buffer to ride a failover on.
      loader: FetchLoader,
      fetchSetup: (context: LoaderContext, init: RequestInit) =>
        new Request(context.url, { ...init, cache: isPlaylist(context) ? 'no-store' : 'default' }),
    });
    this.hls = hls;
    hls.on(Hls.Events.MANIFEST_PARSED, (_e, data) => {
      this.events.onLevels(data.levels.map((l, index) => ({ index, name: levelName(l) })));
      this.video.play().catch(() => {
        // Autoplay with sound may be refused; the page starts muted, so this is rare. The controls remain.
      });
    });
    hls.on(Hls.Events.LEVEL_SWITCHED, () => this.events.onLevelSwitched());
    hls.on(Hls.Events.ERROR, (_e, data) => this.onError(data));
    hls.loadSource(this.src);
    hls.attachMedia(this.video);
  }

  private onError(data: ErrorData): void {
    this.stats.errors.push(data.details);
    if (data.details === Hls.ErrorDetails.BUFFER_STALLED_ERROR && this.stats.playingSince !== null)
      this.stats.stalls++;
    if (!data.fatal) return;
    this.stats.fatal.push(data.details);
    const hls = this.hls;
    if (!hls) return;
    const manifestMissing =
      data.details === Hls.ErrorDetails.MANIFEST_LOAD_ERROR ||
      data.details === Hls.ErrorDetails.MANIFEST_LOAD_TIMEOUT ||
      data.details === Hls.ErrorDetails.MANIFEST_PARSING_ERROR;
    if (manifestMissing || data.details === Hls.ErrorDetails.LEVEL_EMPTY_ERROR) {
      // No playlist yet (starting) or any more: start over in a moment.
      this.events.onUnavailable('starting');
      this.restart(1000);
    } else if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
      hls.recoverMediaError();
    } else if (data.type === Hls.ErrorTypes.NETWORK_ERROR) {
      this.events.onUnavailable('network');
      this.restart(2000);
    } else {
      this.restart(2000);
    }
  }

  private restart(afterMs: number): void {
    this.hls?.destroy();
    this.hls = null;
    clearTimeout(this.retry);
    this.retry = window.setTimeout(() => this.start(), afterMs);
  }

  stop(): void {
    clearTimeout(this.retry);
    this.hls?.destroy();
    this.hls = null;
  }

  destroy(): void {
    this.destroyed = true;
    window.clearInterval(this.interval);
    this.listening.abort();
    this.setRate('normal');
    this.stop();
  }

  /** -1: automatic (ABR); otherwise a level index, switched at once (the buffer is flushed). */
  setLevel(index: number): void {
    if (!this.hls) return;
    this.hls.currentLevel = index;
  }

  /** Seconds behind the live edge hls.js aims for, or null when not known yet. */
  get latency(): number | null {
    const l = this.hls?.latency;
    return l !== undefined && Number.isFinite(l) && l > 0 ? l : null;
  }

  /** How far the picture is behind the live sync point (seconds); > a segment or two: not "live". */
  get behindLive(): number | null {
    const edge = this.hls?.liveSyncPosition;
    if (edge === null || edge === undefined) return null;
    return Math.max(0, edge - this.video.currentTime);
  }

  goLive(): void {
    const edge = this.hls?.liveSyncPosition;
    if (edge !== null && edge !== undefined) this.video.currentTime = edge;
    void this.video.play().catch(() => undefined);
  }

  get targetDuration(): number {
    return this.hls?.levels[this.hls.currentLevel]?.details?.targetduration ?? 1;
  }

  /**
   * The wall-clock time (ms, the platform's clock) of the frame on screen, from EXT-X-PROGRAM-DATE-TIME;
   * null while nothing plays. The chat shows a message once the video has reached its time.
   */
  videoClock(): number | null {
    if (!this.hls || this.video.paused || this.video.readyState < 2) return null;
    const date = this.hls.playingDate;
    return date ? date.getTime() : null;
  }
}
