// PNG in and out for the page: decode rns's id PNGs exactly, encode a greyscale mask of class ids.
// Decoding uses colorSpaceConversion "none" so the browser never "corrects" id values as colours.
"use strict";

const RnsPng = (() => {
  const CRC_TABLE = new Uint32Array(256).map((_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });

  function crc32(bytes) {
    let c = 0xffffffff;
    for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  }

  function chunk(type, data) {
    const out = new Uint8Array(12 + data.length);
    const view = new DataView(out.buffer);
    view.setUint32(0, data.length);
    for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
    out.set(data, 8);
    view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
    return out;
  }

  async function deflate(bytes) {
    const stream = new Blob([bytes]).stream().pipeThrough(new CompressionStream("deflate"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  // An 8-bit greyscale PNG (colour type 0) of `ids` (Uint8Array, width*height, row-major).
  async function encodeGrey(width, height, ids) {
    const raw = new Uint8Array((width + 1) * height);
    for (let y = 0; y < height; y++) raw.set(ids.subarray(y * width, (y + 1) * width), y * (width + 1) + 1);
    const header = new Uint8Array(13);
    const view = new DataView(header.buffer);
    view.setUint32(0, width);
    view.setUint32(4, height);
    header.set([8, 0, 0, 0, 0], 8);
    const signature = new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]);
    const parts = [signature, chunk("IHDR", header), chunk("IDAT", await deflate(raw)), chunk("IEND", new Uint8Array())];
    return new Blob(parts, { type: "image/png" });
  }

  // RGBA pixels of a base64 PNG, undisturbed by colour management.
  async function decodeBase64(base64) {
    const bytes = Uint8Array.from(atob(base64), (ch) => ch.charCodeAt(0));
    const bitmap = await createImageBitmap(new Blob([bytes], { type: "image/png" }), {
      colorSpaceConversion: "none", premultiplyAlpha: "none",
    });
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    const context = canvas.getContext("2d", { colorSpace: "srgb" });
    context.drawImage(bitmap, 0, 0);
    return context.getImageData(0, 0, bitmap.width, bitmap.height);
  }

  // Class ids from rns's greyscale label PNG.
  async function decodeIds(base64) {
    const image = await decodeBase64(base64);
    const ids = new Uint8Array(image.width * image.height);
    for (let i = 0; i < ids.length; i++) ids[i] = image.data[4 * i];
    return ids;
  }

  // Region ids from rns's RGB region PNG (id = r + 256 g + 65536 b).
  async function decodeRegions(base64) {
    const image = await decodeBase64(base64);
    const ids = new Uint32Array(image.width * image.height);
    const d = image.data;
    for (let i = 0; i < ids.length; i++) ids[i] = d[4 * i] + (d[4 * i + 1] << 8) + (d[4 * i + 2] << 16);
    return ids;
  }

  return { encodeGrey, decodeIds, decodeRegions };
})();
