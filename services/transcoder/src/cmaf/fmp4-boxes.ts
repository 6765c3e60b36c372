// ISO BMFF (MP4) box reading for the CMAF part cutter: box headers, and the few fields of `moov` and `moof`
// that cutting needs (track timescales and defaults, decode times, durations, sync flags). Reads only; every
// read is bounds-checked, so malformed input ends in a CmafError naming the box, never in a RangeError, a
// wrong number or a loop. Field layouts are from ISO/IEC 14496-12 (section numbers below).

/** Malformed or unsupported fragmented MP4. The message says which box and what was wrong. */
export class CmafError extends Error {
  override name = 'CmafError';
}

export interface BoxHeader {
  type: string;
  /** Whole box, header included. */
  size: number;
  /** 8, or 16 with a 64-bit `largesize`. */
  headerSize: number;
}

/**
 * The header of the box starting at `buf[0]`, or undefined when fewer bytes than the header are there yet.
 * Rejects what cannot be a box of a stream: size 0 ("to the end of the file", unusable on a pipe), a size
 * smaller than its own header, a type that is not 4 printable ASCII characters (garbage, or lost sync).
 */
export function readBoxHeader(buf: Uint8Array): BoxHeader | undefined {
  if (buf.length < 8) return undefined;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const type = boxType(buf, 4);
  const size32 = view.getUint32(0);
  if (size32 === 0) throw new CmafError(`box '${type}' has size 0 (to end of file): not usable on a stream`);
  if (size32 !== 1) {
    if (size32 < 8) throw new CmafError(`box '${type}' has size ${size32}, smaller than its 8-byte header`);
    return { type, size: size32, headerSize: 8 };
  }
  // size 1: a 64-bit size follows the type (section 4.2).
  if (buf.length < 16) return undefined;
  const large = view.getBigUint64(8);
  if (large > BigInt(Number.MAX_SAFE_INTEGER)) throw new CmafError(`box '${type}' has size ${large}: absurd`);
  const size = Number(large);
  if (size < 16)
    throw new CmafError(`box '${type}' has 64-bit size ${size}, smaller than its 16-byte header`);
  return { type, size, headerSize: 16 };
}

function boxType(buf: Uint8Array, at: number): string {
  let type = '';
  for (let i = at; i < at + 4; i++) {
    const c = buf[i] ?? 0;
    if (c < 0x20 || c > 0x7e) {
      const hex = Buffer.from(buf.subarray(at, at + 4)).toString('hex');
      throw new CmafError(`not an MP4 box: type bytes 0x${hex} are not printable (garbage or lost sync)`);
    }
    type += String.fromCharCode(c);
  }
  return type;
}

/** A bounds-checked big-endian reader over one box's payload. */
class Reader {
  private readonly view: DataView;
  constructor(
    private readonly box: string,
    bytes: Uint8Array,
    public pos = 0,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  private need(n: number): number {
    const at = this.pos;
    if (at + n > this.view.byteLength) {
      throw new CmafError(
        `box '${this.box}' is truncated: needs ${at + n} bytes, has ${this.view.byteLength}`,
      );
    }
    this.pos += n;
    return at;
  }
  u8 = () => this.view.getUint8(this.need(1));
  u24 = () => {
    const at = this.need(3);
    return (this.view.getUint8(at) << 16) | this.view.getUint16(at + 1);
  };
  u32 = () => this.view.getUint32(this.need(4));
  u64 = () => {
    const value = this.view.getBigUint64(this.need(8));
    if (value > BigInt(Number.MAX_SAFE_INTEGER))
      throw new CmafError(`box '${this.box}': 64-bit value ${value}`);
    return Number(value);
  };
  skip = (n: number) => void this.need(n);
  /** Full box header (section 4.2): version and 24-bit flags. */
  fullBox = () => ({ version: this.u8(), flags: this.u24() });
}

interface Child {
  type: string;
  payload: Uint8Array;
}

/** The child boxes of a container's payload; a child running past its parent is an error. */
function children(parent: string, payload: Uint8Array): Child[] {
  const out: Child[] = [];
  let at = 0;
  while (at < payload.length) {
    const header = readBoxHeader(payload.subarray(at));
    if (!header) throw new CmafError(`box '${parent}' ends inside a child box header`);
    if (at + header.size > payload.length) {
      throw new CmafError(
        `box '${header.type}' (${header.size} bytes) runs past the end of its parent '${parent}'`,
      );
    }
    out.push({ type: header.type, payload: payload.subarray(at + header.headerSize, at + header.size) });
    at += header.size;
  }
  return out;
}

const child = (parent: string, payload: Uint8Array, type: string) =>
  children(parent, payload).find((c) => c.type === type);

export interface TrackInfo {
  id: number;
  /** Ticks per second of the track's media time (mdhd). */
  timescale: number;
  /** hdlr handler type: 'vide', 'soun', ... */
  handler: string;
  /** trex defaults, used when tfhd and trun leave a field out. */
  defaultSampleDuration: number;
  defaultSampleFlags: number;
}

/** Tracks of an init segment's `moov` payload: id, timescale, handler and trex defaults. */
export function parseMoov(moov: Uint8Array): TrackInfo[] {
  const trex = new Map<number, { duration: number; flags: number }>();
  const mvex = child('moov', moov, 'mvex');
  for (const c of mvex ? children('mvex', mvex.payload) : []) {
    if (c.type !== 'trex') continue;
    const r = new Reader('trex', c.payload); // section 8.8.3
    r.fullBox();
    const id = r.u32();
    r.skip(4); // default_sample_description_index
    const duration = r.u32();
    r.skip(4); // default_sample_size
    trex.set(id, { duration, flags: r.u32() });
  }
  const tracks: TrackInfo[] = [];
  for (const trak of children('moov', moov).filter((c) => c.type === 'trak')) {
    const tkhd = child('trak', trak.payload, 'tkhd');
    const mdia = child('trak', trak.payload, 'mdia');
    const mdhd = mdia && child('mdia', mdia.payload, 'mdhd');
    const hdlr = mdia && child('mdia', mdia.payload, 'hdlr');
    if (!tkhd || !mdhd || !hdlr) throw new CmafError("a 'trak' lacks tkhd, mdia/mdhd or mdia/hdlr");
    const t = new Reader('tkhd', tkhd.payload); // section 8.3.2: times are 64-bit in version 1
    t.skip(t.fullBox().version === 1 ? 16 : 8);
    const id = t.u32();
    const m = new Reader('mdhd', mdhd.payload); // section 8.4.2
    m.skip(m.fullBox().version === 1 ? 16 : 8);
    const timescale = m.u32();
    if (timescale === 0) throw new CmafError(`track ${id}: mdhd timescale is 0`);
    const h = new Reader('hdlr', hdlr.payload); // section 8.4.3
    h.skip(8); // version/flags, pre_defined
    const handler = boxType(hdlr.payload, h.pos);
    const defaults = trex.get(id);
    tracks.push({
      id,
      timescale,
      handler,
      defaultSampleDuration: defaults?.duration ?? 0,
      defaultSampleFlags: defaults?.flags ?? 0,
    });
  }
  if (tracks.length === 0) throw new CmafError("'moov' has no track");
  return tracks;
}

export interface TrackFragment {
  trackId: number;
  /** tfdt baseMediaDecodeTime, in the track's timescale. */
  decodeTime: number;
  /** Sum of the fragment's sample durations, in the track's timescale. */
  duration: number;
  sampleCount: number;
  /** The first sample is a sync sample (a keyframe for video; every audio sample is one). */
  firstIsSync: boolean;
}

// tfhd flags (section 8.8.7) and trun flags (section 8.8.8).
const TFHD_BASE_DATA_OFFSET = 0x1;
const TFHD_SAMPLE_DESCRIPTION_INDEX = 0x2;
const TFHD_DEFAULT_DURATION = 0x8;
const TFHD_DEFAULT_SIZE = 0x10;
const TFHD_DEFAULT_FLAGS = 0x20;
const TRUN_DATA_OFFSET = 0x1;
const TRUN_FIRST_SAMPLE_FLAGS = 0x4;
const TRUN_DURATION = 0x100;
const TRUN_SIZE = 0x200;
const TRUN_FLAGS = 0x400;
const TRUN_CTS_OFFSET = 0x800;
/** sample_is_non_sync_sample in sample flags (section 8.8.3.1). */
const NON_SYNC = 0x10000;

/** The track fragments of a `moof` payload, with what each says about timing and sync. */
export function parseMoof(moof: Uint8Array, tracks: ReadonlyMap<number, TrackInfo>): TrackFragment[] {
  const out: TrackFragment[] = [];
  for (const traf of children('moof', moof).filter((c) => c.type === 'traf')) {
    const boxes = children('traf', traf.payload);
    const tfhd = boxes.find((b) => b.type === 'tfhd');
    const tfdt = boxes.find((b) => b.type === 'tfdt');
    if (!tfhd) throw new CmafError("a 'traf' has no tfhd");
    if (!tfdt)
      throw new CmafError("a 'traf' has no tfdt (decode time): ffmpeg writes one for fragmented mp4");
    const h = new Reader('tfhd', tfhd.payload);
    const { flags } = h.fullBox();
    const trackId = h.u32();
    const track = tracks.get(trackId);
    if (!track) throw new CmafError(`'traf' names track ${trackId}, which the init segment does not have`);
    if (flags & TFHD_BASE_DATA_OFFSET) h.skip(8);
    if (flags & TFHD_SAMPLE_DESCRIPTION_INDEX) h.skip(4);
    const defaultDuration = flags & TFHD_DEFAULT_DURATION ? h.u32() : track.defaultSampleDuration;
    if (flags & TFHD_DEFAULT_SIZE) h.skip(4);
    const defaultFlags = flags & TFHD_DEFAULT_FLAGS ? h.u32() : track.defaultSampleFlags;
    const d = new Reader('tfdt', tfdt.payload); // section 8.8.12
    const decodeTime = d.fullBox().version === 1 ? d.u64() : d.u32();
    let duration = 0;
    let sampleCount = 0;
    let firstFlags: number | undefined;
    for (const trun of boxes.filter((b) => b.type === 'trun')) {
      const r = new Reader('trun', trun.payload);
      const tf = r.fullBox().flags;
      const count = r.u32();
      // Each sample needs at least its listed fields: refuse counts the box cannot hold before looping.
      const perSample =
        [TRUN_DURATION, TRUN_SIZE, TRUN_FLAGS, TRUN_CTS_OFFSET].filter((f) => tf & f).length * 4;
      if (count * perSample > trun.payload.length) throw new CmafError(`'trun' claims ${count} samples`);
      if (tf & TRUN_DATA_OFFSET) r.skip(4);
      const first = tf & TRUN_FIRST_SAMPLE_FLAGS ? r.u32() : undefined;
      if (sampleCount === 0 && count > 0) firstFlags = first;
      if (perSample === 0) {
        // Nothing listed per sample: every sample takes the defaults (no loop over an untrusted count).
        duration += count * defaultDuration;
        if (sampleCount === 0 && count > 0) firstFlags ??= defaultFlags;
      }
      for (let i = 0; perSample > 0 && i < count; i++) {
        const sampleDuration = tf & TRUN_DURATION ? r.u32() : defaultDuration;
        if (tf & TRUN_SIZE) r.skip(4);
        const sampleFlags = tf & TRUN_FLAGS ? r.u32() : defaultFlags;
        if (tf & TRUN_CTS_OFFSET) r.skip(4);
        if (sampleCount === 0 && i === 0) firstFlags ??= sampleFlags;
        duration += sampleDuration;
      }
      sampleCount += count;
    }
    out.push({
      trackId,
      decodeTime,
      duration,
      sampleCount,
      firstIsSync: firstFlags !== undefined && (firstFlags & NON_SYNC) === 0,
    });
  }
  if (out.length === 0) throw new CmafError("'moof' has no track fragment");
  return out;
}
