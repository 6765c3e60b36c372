// ffmpeg output options for one rendition written as fragmented MP4 to a non-seekable output (a pipe), the
// input of the part cutter. Pure, so tests can read them. Route measured with ffmpeg 5.1 (facts.md,
// "Low-latency HLS"): ffmpeg's hls muxer cannot write parts, its mp4 muxer can write one fragment per part.

export interface Fmp4OutputOptions {
  /** Part duration target in ms (ffmpeg cuts a fragment once this much media is buffered). */
  partTargetMs?: number;
}

export function fmp4OutputArgs({ partTargetMs = 200 }: Fmp4OutputOptions = {}): string[] {
  return [
    // The ISO BMFF muxer (not hls/dash): it writes fragments on its own and to any output, a pipe included.
    '-f',
    'mp4',
    // frag_keyframe: a new fragment at every video keyframe, so segment boundaries are fragment boundaries.
    // empty_moov: the init segment carries no samples (required to write fragments to a non-seekable output).
    // delay_moov: write the moov once the first packets are in, so AAC's start offset (priming) is known
    //   and ffmpeg does not warn about it with empty_moov.
    // default_base_moof: tfhd says data offsets are relative to the moof, so each moof+mdat stands alone
    //   (a part can be served and appended on its own, as CMAF requires).
    // cmaf: CMAF brands and constraints (one sample description, tfdt in every traf).
    '-movflags',
    'frag_keyframe+empty_moov+delay_moov+default_base_moof+cmaf',
    // Also cut a fragment once it holds this many microseconds: one fragment = one part.
    '-frag_duration',
    String(Math.round(partTargetMs * 1000)),
    // Write each fragment to the output as soon as it is muxed (no AVIO buffering): parts leave at once.
    '-flush_packets',
    '1',
  ];
}
