// Blocking playlist reload (rfc8216bis 6.2.5.2) over an LlRenditionPlaylist, and a small adapter from a
// playlist request's query (_HLS_msn, _HLS_part, _HLS_skip) to a status, headers and body. No HTTP server
// here: the origin will call playlistResponse() from its request handler.
// - Held: the answer waits until the playlist has Part N of segment M or later (M2; a part index past the
//   last part of a complete segment means part 0 of the next, M3), or segment M or later without
//   _HLS_part (M1). Checked on every change of the playlist, so the answer leaves in the same tick as the
//   part that satisfies it.
// - Not held: once the playlist has ENDLIST (M5), or when the condition already holds (also for segments
//   that left the window: M4 asks for the whole playlist then).
// - Held, with or without directives: a playlist with no complete segment yet (the first second of a
//   stream), until it has one. Its parts alone belong to a segment still being cut, and players see no
//   segment in it: hls.js reports levelEmptyError (an error event every viewer of a new stream would get).
// - Held, within the same time: a playlist whose parts are not listed yet (the origin has just started
//   hearing the stream's parts: the first LL viewer of a stream on this origin), until they are and the
//   first segment listed with its parts is complete (LlRenditionPlaylist.awaitingParts: 1-2 segments), so the
//   player starts near the live edge with a segment of parts behind it and a preload hint. If they do not
//   come in time, the playlist is answered as it is (segments only, or the first parts).
// - 400 at once (S1): _HLS_msn more than 2 beyond the last complete segment, or _HLS_part more than the
//   Advance Part Limit (3 / PART-TARGET parts if PART-TARGET < 1 s, else 3) beyond the newest part; and
//   _HLS_part without _HLS_msn (M6).
// - 503 after the hold time (S2: a server that cannot answer after blocking for more than three target
//   durations SHOULD say Service Unavailable). Default hold: 3 x TARGETDURATION. The stream is stalled,
//   not the request wrong: a client retries (hls.js does), and a failover usually resumes within that time.
import type { LlRenditionPlaylist, LlStream } from './ll-playlist.js';

export class PlaylistRequestError extends Error {
  override name = 'PlaylistRequestError';
  constructor(
    readonly status: 400 | 404 | 503,
    message: string,
  ) {
    super(message);
  }
}

/** rfc8216bis 6.2.5.2: how many parts ahead of the newest one a request may ask for. */
export function advancePartLimit(partTarget: number): number {
  return partTarget < 1 ? Math.floor(3 / partTarget + 1e-9) : 3;
}

/** True when the playlist satisfies a blocking request for (msn, part). */
export function satisfies(playlist: LlRenditionPlaylist, msn: number, part?: number): boolean {
  if (playlist.ended) return true;
  if (part === undefined) return playlist.lastCompleteMsn() >= msn;
  const at = playlist.position();
  if (!at) return false;
  return at.msn > msn || (at.msn === msn && at.part >= part);
}

/**
 * Resolves once the playlist has part `part` of segment `msn` (or segment `msn` when `part` is undefined),
 * or later; rejects with a PlaylistRequestError: 400 when asked too far ahead, 503 after `timeoutMs`.
 */
export function waitFor(
  playlist: LlRenditionPlaylist,
  msn: number,
  part: number | undefined,
  timeoutMs = 3 * playlist.targetDuration * 1000,
): Promise<void> {
  if (satisfies(playlist, msn, part)) return Promise.resolve();
  const lastMsn = playlist.lastCompleteMsn();
  if (msn > lastMsn + 2) {
    return Promise.reject(
      new PlaylistRequestError(
        400,
        `_HLS_msn=${msn} is more than 2 segments ahead of the last one (${lastMsn})`,
      ),
    );
  }
  if (part !== undefined) {
    const at = playlist.position() ?? { msn: lastMsn + 1, part: -1 };
    // Parts ahead of the newest one: exact within its segment, at least part + 1 for a later segment.
    const ahead = msn === at.msn ? part - at.part : part + 1;
    const limit = advancePartLimit(playlist.partTarget);
    if (msn >= at.msn && ahead > limit) {
      return Promise.reject(
        new PlaylistRequestError(400, `_HLS_part=${part} of ${msn} is ${ahead} parts ahead (limit ${limit})`),
      );
    }
  }
  return until(
    playlist,
    () => satisfies(playlist, msn, part),
    part === undefined ? `segment ${msn}` : `part ${part} of segment ${msn}`,
    timeoutMs,
  );
}

/** Resolves once the playlist has a complete segment (or ENDLIST); rejects with 503 after `timeoutMs`. */
export function waitForFirstSegment(
  playlist: LlRenditionPlaylist,
  timeoutMs = 3 * playlist.targetDuration * 1000,
): Promise<void> {
  return until(playlist, () => playlist.ended || playlist.segments.length > 0, 'a first segment', timeoutMs);
}

/** Resolves once the playlist's parts are ready for a joining player (or it has ENDLIST), or after `timeoutMs` all the same. */
export async function waitForParts(playlist: LlRenditionPlaylist, timeoutMs: number): Promise<void> {
  try {
    await until(playlist, () => playlist.ended || !playlist.awaitingParts, 'parts', timeoutMs);
  } catch (e) {
    if (!(e instanceof PlaylistRequestError)) throw e;
  }
}

/** Resolves when `ready()` holds, checked on every change of the playlist; 503 after `timeoutMs`. */
function until(
  playlist: LlRenditionPlaylist,
  ready: () => boolean,
  what: string,
  timeoutMs: number,
): Promise<void> {
  if (ready()) return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const check = () => {
      if (!ready()) return;
      done();
      resolve();
    };
    const unsubscribe = playlist.onChange(check);
    const timer = setTimeout(() => {
      done();
      reject(
        new PlaylistRequestError(503, `${playlist.rendition}: ${what} did not appear within ${timeoutMs} ms`),
      );
    }, timeoutMs);
    const done = () => {
      clearTimeout(timer);
      unsubscribe();
    };
  });
}

export interface PlaylistResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

const DECIMAL_INTEGER = /^\d{1,15}$/;

/**
 * The answer to `GET <rendition>.m3u8?<query>`: the playlist once the directives are satisfied, or an
 * error status. Caching: a blocking response may be cached briefly (its URL names a state that only grows,
 * and a CDN can coalesce the viewers asking for the same part); a plain reload must not be.
 */
export async function playlistResponse(
  stream: LlStream,
  rendition: string,
  query: URLSearchParams,
  timeoutMs?: number,
): Promise<PlaylistResponse> {
  const error = (status: number, message: string): PlaylistResponse => ({
    status,
    headers: { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-cache' },
    body: `${message}\n`,
  });
  const playlist = stream.renditions.get(rendition);
  if (!playlist) return error(404, `no rendition ${rendition}`);
  const msnParam = query.get('_HLS_msn');
  const partParam = query.get('_HLS_part');
  const skipParam = query.get('_HLS_skip');
  for (const [name, value] of [
    ['_HLS_msn', msnParam],
    ['_HLS_part', partParam],
  ] as const) {
    if (value !== null && !DECIMAL_INTEGER.test(value))
      return error(400, `${name} must be a decimal integer`);
  }
  if (partParam !== null && msnParam === null) return error(400, '_HLS_part without _HLS_msn');
  if (skipParam !== null && skipParam !== 'YES' && skipParam !== 'v2')
    return error(400, '_HLS_skip must be YES or v2');
  // One hold per request: the directives' wait and the first-segment and parts waits share its 3 target durations (a
  // CDN's backend timeout is set just above that).
  const holdMs = timeoutMs ?? 3 * playlist.targetDuration * 1000;
  const heldUntil = Date.now() + holdMs;
  try {
    if (msnParam !== null) {
      await waitFor(playlist, Number(msnParam), partParam === null ? undefined : Number(partParam), holdMs);
    }
    await waitForFirstSegment(playlist, Math.max(0, heldUntil - Date.now()));
    await waitForParts(playlist, Math.max(0, heldUntil - Date.now()));
  } catch (e) {
    if (e instanceof PlaylistRequestError) {
      const response = error(e.status, e.message);
      if (e.status === 503) response.headers['retry-after'] = '1';
      return response;
    }
    throw e;
  }
  return {
    status: 200,
    headers: {
      'content-type': 'application/vnd.apple.mpegurl',
      'cache-control': msnParam !== null ? `public, max-age=${6 * playlist.targetDuration}` : 'no-cache',
    },
    body: stream.render(rendition, skipParam === null ? undefined : skipParam),
  };
}
