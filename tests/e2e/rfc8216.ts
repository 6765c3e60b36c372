// RFC 8216 rules a live fMP4 media playlist must keep, checked on the parsed playlist; plus the rules
// between two successive loads of the same playlist (what a player relies on while it reloads).
import type { MediaPlaylist } from 'hls-parser/types.js';

export function checkMediaPlaylist(p: MediaPlaylist): string[] {
  const problems: string[] = [];
  if ((p.version ?? 0) < 7) problems.push(`EXT-X-VERSION ${p.version} < 7`);
  if (p.segments.length === 0 && !p.endlist) problems.push('no segments');
  p.segments.forEach((s, i) => {
    // 4.3.3.1: the EXTINF duration, rounded to the nearest integer, must be <= EXT-X-TARGETDURATION.
    if (Math.round(s.duration) > p.targetDuration)
      problems.push(`segment ${s.mediaSequenceNumber}: EXTINF ${s.duration} > target ${p.targetDuration}`);
    if (!s.map) problems.push(`segment ${s.mediaSequenceNumber}: no EXT-X-MAP`);
    if (!s.programDateTime) problems.push(`segment ${s.mediaSequenceNumber}: no EXT-X-PROGRAM-DATE-TIME`);
    const previous = p.segments[i - 1];
    if (previous) {
      if (s.mediaSequenceNumber !== previous.mediaSequenceNumber + 1)
        problems.push(`media sequence jumps at ${s.mediaSequenceNumber}`);
      const expectedDsn = previous.discontinuitySequence + (s.discontinuity ? 1 : 0);
      if (s.discontinuitySequence !== expectedDsn)
        problems.push(`discontinuity sequence wrong at ${s.mediaSequenceNumber}`);
    }
  });
  return problems;
}

/** Between two loads: sequence numbers never go back, and one number always names the same segment. */
export function checkReload(before: MediaPlaylist, after: MediaPlaylist): string[] {
  const problems: string[] = [];
  const first = (p: MediaPlaylist) => p.segments[0]?.mediaSequenceNumber ?? -1;
  if (first(after) < first(before))
    problems.push(`media sequence went back: ${first(before)} -> ${first(after)}`);
  const uris = new Map(before.segments.map((s) => [s.mediaSequenceNumber, s.uri]));
  for (const s of after.segments) {
    const uri = uris.get(s.mediaSequenceNumber);
    if (uri && uri !== s.uri) problems.push(`sequence ${s.mediaSequenceNumber} was ${uri}, now ${s.uri}`);
  }
  if (before.endlist && !after.endlist && after.segments.length <= before.segments.length)
    problems.push('ENDLIST disappeared');
  return problems;
}
