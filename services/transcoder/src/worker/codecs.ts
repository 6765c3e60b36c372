// RFC 6381 codecs string of a rendition, read from its init segment (the master playlist's CODECS).
export function codecsOfInit(init: Buffer): string {
  const parts: string[] = [];
  const avcC = init.indexOf('avcC');
  if (avcC >= 0) {
    // avcC box body: version, profile_idc, profile_compatibility, level_idc.
    const hex = (i: number) => (init[avcC + 4 + i] ?? 0).toString(16).padStart(2, '0');
    parts.push(`avc1.${hex(1)}${hex(2)}${hex(3)}`);
  }
  if (init.indexOf('mp4a') >= 0) parts.push('mp4a.40.2'); // AAC-LC, what the ladder encodes
  return parts.join(',');
}
