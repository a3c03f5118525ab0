// COCO run-length encoding (pycocotools' compressed string), column-major, as the server uses.

export function decodeCounts(s) {
  const counts = [];
  let p = 0;
  while (p < s.length) {
    let x = 0, k = 0, more = 1, c = 0;
    while (more) {
      c = s.charCodeAt(p) - 48;
      x |= (c & 0x1f) << (5 * k);
      more = c & 0x20;
      p += 1; k += 1;
      if (!more && (c & 0x10)) x |= -1 << (5 * k);
    }
    if (counts.length > 2) x += counts[counts.length - 2];
    counts.push(x);
  }
  return counts;
}

export function encodeCounts(counts) {
  let out = "";
  for (let i = 0; i < counts.length; i++) {
    let x = counts[i];
    if (i > 2) x -= counts[i - 2];
    let more = 1;
    while (more) {
      let c = x & 0x1f;
      x >>= 5;
      more = (c & 0x10) ? x !== -1 : x !== 0;
      if (more) c |= 0x20;
      out += String.fromCharCode(c + 48);
    }
  }
  return out;
}

/** Mask (Uint8Array, row-major h*w) from an RLE {size: [h, w], counts}. */
export function decodeMask(rle) {
  const [h, w] = rle.size;
  const counts = typeof rle.counts === "string" ? decodeCounts(rle.counts) : rle.counts;
  const mask = new Uint8Array(h * w);
  let pos = 0, val = 0;
  for (const n of counts) {
    if (val) for (let i = pos; i < pos + n; i++) mask[(i % h) * w + Math.floor(i / h)] = 1;
    pos += n; val ^= 1;
  }
  return mask;
}

export function encodeMask(mask, h, w) {
  const counts = [];
  let run = 0, val = 0;
  for (let col = 0; col < w; col++) {
    for (let row = 0; row < h; row++) {
      const v = mask[row * w + col] ? 1 : 0;
      if (v !== val) { counts.push(run); run = 0; val = v; }
      run += 1;
    }
  }
  counts.push(run);
  return { size: [h, w], counts: encodeCounts(counts) };
}

export function emptyRle(h, w) { return { size: [h, w], counts: encodeCounts([h * w]) }; }

export function maskArea(mask) { let n = 0; for (const v of mask) n += v; return n; }

/** Clear (or set) mask pixels whose centers lie within `radius` of the stroke points. */
export function paintMask(mask, h, w, points, radius, value) {
  for (const [px, py] of points) {
    const x0 = Math.max(0, Math.floor(px - radius)), x1 = Math.min(w - 1, Math.ceil(px + radius));
    const y0 = Math.max(0, Math.floor(py - radius)), y1 = Math.min(h - 1, Math.ceil(py + radius));
    for (let y = y0; y <= y1; y++) for (let x = x0; x <= x1; x++) {
      if ((x + 0.5 - px) ** 2 + (y + 0.5 - py) ** 2 <= radius * radius) mask[y * w + x] = value;
    }
  }
  return mask;
}
