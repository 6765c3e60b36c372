// An LL-HLS media playlist read line by line, independently of hls-parser (which writes the playlists), and
// the rfc8216bis rules every live LL-HLS playlist must follow. Used by the packager's unit tests and the
// end-to-end tests against the running origin.
import assert from 'node:assert/strict';

export interface LlEntry {
  msn: number;
  discontinuity: boolean;
  map?: string;
  pdt?: string;
  parts: { uri: string; duration: number; independent: boolean }[];
  duration?: number;
  uri?: string;
}

export interface LlPlaylistRead {
  version: number;
  targetDuration: number;
  partTarget: number;
  serverControl: Record<string, string>;
  mediaSequence: number;
  discontinuitySequence: number;
  skip?: Record<string, string>;
  entries: LlEntry[];
  hints: string[];
  reports: { uri: string; lastMsn: number; lastPart?: number }[];
  endlist: boolean;
}

const attrs = (list: string): Record<string, string> =>
  Object.fromEntries(
    [...list.matchAll(/([A-Z0-9-]+)=("[^"]*"|[^,]*)/g)].map((m) => [
      m[1] as string,
      (m[2] as string).replace(/"/g, ''),
    ]),
  );

/** A media playlist read line by line (independent of hls-parser). */
export function readLlPlaylist(text: string): LlPlaylistRead {
  assert.ok(text.endsWith('\n'), 'every line ends with a line feed');
  const lines = text.trimEnd().split('\n');
  assert.equal(lines[0], '#EXTM3U');
  const out: LlPlaylistRead = {
    version: 0,
    targetDuration: 0,
    partTarget: 0,
    serverControl: {},
    mediaSequence: 0,
    discontinuitySequence: 0,
    entries: [],
    hints: [],
    reports: [],
    endlist: false,
  };
  let current: LlEntry | undefined;
  const entry = () => {
    current ??= {
      msn: out.mediaSequence + Number(out.skip?.['SKIPPED-SEGMENTS'] ?? 0) + out.entries.length,
      discontinuity: false,
      parts: [],
    };
    return current;
  };
  for (const line of lines.slice(1)) {
    const [tag, value = ''] = line.split(/:(.*)/s) as [string, string?];
    if (tag === '#EXT-X-VERSION') out.version = Number(value);
    else if (tag === '#EXT-X-TARGETDURATION') out.targetDuration = Number(value);
    else if (tag === '#EXT-X-PART-INF') out.partTarget = Number(attrs(value)['PART-TARGET']);
    else if (tag === '#EXT-X-SERVER-CONTROL') out.serverControl = attrs(value);
    else if (tag === '#EXT-X-MEDIA-SEQUENCE') out.mediaSequence = Number(value);
    else if (tag === '#EXT-X-DISCONTINUITY-SEQUENCE') out.discontinuitySequence = Number(value);
    else if (tag === '#EXT-X-SKIP') out.skip = attrs(value);
    else if (tag === '#EXT-X-INDEPENDENT-SEGMENTS') continue;
    else if (tag === '#EXT-X-DISCONTINUITY') entry().discontinuity = true;
    else if (tag === '#EXT-X-MAP') entry().map = attrs(value).URI;
    else if (tag === '#EXT-X-PROGRAM-DATE-TIME') entry().pdt = value;
    else if (tag === '#EXT-X-PART') {
      const a = attrs(value);
      entry().parts.push({
        uri: a.URI ?? '',
        duration: Number(a.DURATION),
        independent: a.INDEPENDENT === 'YES',
      });
    } else if (tag === '#EXT-X-PRELOAD-HINT') {
      const a = attrs(value);
      assert.equal(a.TYPE, 'PART');
      out.hints.push(a.URI ?? '');
      if (current) out.entries.push(current);
      current = undefined;
    } else if (tag === '#EXTINF') entry().duration = Number(value.split(',')[0]);
    else if (tag === '#EXT-X-ENDLIST') out.endlist = true;
    else if (tag === '#EXT-X-RENDITION-REPORT') {
      const a = attrs(value);
      out.reports.push({
        uri: a.URI ?? '',
        lastMsn: Number(a['LAST-MSN']),
        lastPart: a['LAST-PART'] === undefined ? undefined : Number(a['LAST-PART']),
      });
    } else if (!tag.startsWith('#')) {
      entry().uri = tag;
      out.entries.push(entry());
      current = undefined;
    } else assert.fail(`unexpected line ${line}`);
  }
  return out;
}

/**
 * The rules of rfc8216bis every live LL-HLS media playlist follows, on its text: server control, part
 * durations against PART-TARGET, parts only in the last 3 target durations, at most one preload hint.
 */
export function checkLlRules(text: string): LlPlaylistRead {
  const r = readLlPlaylist(text);
  assert.ok(r.version >= 6, 'EXT-X-VERSION >= 6 (parts need 6, delta updates 9)');
  assert.ok(r.partTarget > 0, 'EXT-X-PART-INF with PART-TARGET');
  assert.equal(r.serverControl['CAN-BLOCK-RELOAD'], 'YES');
  assert.ok(
    Number(r.serverControl['PART-HOLD-BACK']) >= 3 * r.partTarget - 1e-9,
    'PART-HOLD-BACK >= 3 x PART-TARGET',
  );
  assert.ok(Number(r.serverControl['CAN-SKIP-UNTIL']) >= 6 * r.targetDuration, 'CAN-SKIP-UNTIL >= 6 x TD');
  // rfc8216bis 4.4.4.9: DURATION <= PART-TARGET, with no rounding tolerance (unlike EXTINF's rounding to
  // the whole second); only float noise is allowed. At least 85 % except INDEPENDENT parts and last parts.
  // The newest part of the open segment counts as a last part: it may be its segment's last (one cut short
  // by a keyframe, or the end of the stream), which the origin knows only once the segment completes; a
  // short part is wrong only once another part follows it in the same segment.
  for (const e of r.entries) {
    e.parts.forEach((p, i) => {
      assert.ok(p.duration <= r.partTarget + 1e-9, `part ${p.uri} lasts ${p.duration} > PART-TARGET`);
      const last = i === e.parts.length - 1;
      if (!p.independent && !last) assert.ok(p.duration >= 0.85 * r.partTarget - 1e-9, `${p.uri} too short`);
    });
    if (e.duration !== undefined)
      assert.ok(Math.round(e.duration) <= r.targetDuration, 'EXTINF rounds to <= TD');
  }
  // 6.2.2: EXT-X-PART lines only within the last 3 target durations of the playlist's end.
  const durations = r.entries.map((e) => e.duration ?? e.parts.reduce((s, p) => s + p.duration, 0));
  const end = durations.reduce((s, d) => s + d, 0);
  let at = 0;
  r.entries.forEach((e, i) => {
    let partStart = at;
    for (const p of e.parts) {
      assert.ok(
        end - partStart <= 3 * r.targetDuration + 1e-9,
        `part ${p.uri} is ${end - partStart} s from the end`,
      );
      partStart += p.duration;
    }
    at += durations[i] ?? 0;
  });
  // 4.4.5.3: at most one preload hint of a type (optional: a playlist whose origin does not follow its parts
  // yet lists segments only, with no hint; this project's origin writes one whenever it lists parts as they come).
  assert.ok(r.hints.length <= (r.endlist ? 0 : 1), 'at most one preload hint, none after ENDLIST');
  return r;
}
