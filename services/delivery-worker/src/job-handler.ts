/**
 * Handles one message from delivery.jobs: decodes the frame, checks the header against the job
 * schema and hands a delivery or a probe to its handler. The returned promise resolves once the
 * job is done and its result confirmed, so the job is acknowledged only then. A job it cannot act
 * on is dropped (the promise resolves): queue-store schedules the recipients of a delivery again
 * when its lease runs out, and sends a new probe when it still needs one.
 */
import { decodeFrame, type Job, JobSchema } from '@secondary-mx/contracts';
import type { Logger } from '@secondary-mx/logger';
import { createDeliveryHandler, type DeliveryHandlerOptions } from './delivery-handler.ts';
import { createProbeHandler, type ProbeHandlerOptions } from './probe-handler.ts';

export type JobHandlerOptions = DeliveryHandlerOptions & ProbeHandlerOptions;

interface DecodedJob {
  job: Job;
  payload: Buffer;
}

/** Picks the ids out of a header that failed validation, for the error log line. */
function headerIds(header: unknown): Record<string, unknown> {
  if (typeof header !== 'object' || header === null) {
    return {};
  }
  const { kind, leaseId, probeId, domain } = header as Record<string, unknown>;
  return { kind, leaseId, probeId, domain };
}

function decodeJob(content: Buffer, logger: Logger): DecodedJob | undefined {
  let frame: ReturnType<typeof decodeFrame>;
  try {
    frame = decodeFrame(content);
  } catch (error) {
    logger.error({ err: error, bytes: content.length }, 'job is not a valid frame, dropped');
    return undefined;
  }
  const parsed = JobSchema.safeParse(frame.header);
  if (!parsed.success) {
    logger.error(
      { issues: parsed.error.issues, ...headerIds(frame.header) },
      'job header is invalid, dropped',
    );
    return undefined;
  }
  return { job: parsed.data, payload: frame.payload };
}

export function createJobHandler(options: JobHandlerOptions): (content: Buffer) => Promise<void> {
  const deliver = createDeliveryHandler(options);
  const probe = createProbeHandler(options);
  return async (content) => {
    const decoded = decodeJob(content, options.logger);
    if (!decoded) {
      return;
    }
    const { job, payload } = decoded;
    if (job.kind === 'probe') {
      await probe(job);
      return;
    }
    await deliver(job, payload);
  };
}
