/**
 * Frames a JSON header and raw message bytes into one AMQP body: a 4-byte big-endian header
 * length, the UTF-8 JSON header, then the bytes unchanged. This avoids base64 for messages of
 * up to tens of megabytes.
 */
export function encodeFrame(header: unknown, payload?: Buffer): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const length = Buffer.allocUnsafe(4);
  length.writeUInt32BE(json.length, 0);
  return payload ? Buffer.concat([length, json, payload]) : Buffer.concat([length, json]);
}

export class FrameError extends Error {
  override name = 'FrameError';
}

export function decodeFrame(body: Buffer): { header: unknown; payload: Buffer } {
  if (body.length < 4) {
    throw new FrameError(`frame of ${body.length} bytes is shorter than its length prefix`);
  }
  const length = body.readUInt32BE(0);
  if (4 + length > body.length) {
    throw new FrameError(`frame header of ${length} bytes runs past the end of the frame`);
  }
  let header: unknown;
  try {
    header = JSON.parse(body.subarray(4, 4 + length).toString('utf8'));
  } catch (error) {
    throw new FrameError(`frame header is not JSON: ${(error as Error).message}`);
  }
  return { header, payload: body.subarray(4 + length) };
}
