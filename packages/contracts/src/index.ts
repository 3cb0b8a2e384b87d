export { decodeFrame, encodeFrame, FrameError } from './framing.ts';
export { EXCHANGE, prefixed, QUEUE, type QueueName } from './names.ts';
export { newQueueId, QUEUE_ID_PATTERN } from './queue-id.ts';
export * from './schemas.ts';
