/**
 * Runs one probe job: resolves the domain's next hops as a delivery would, probes them with
 * greeting, EHLO and QUIT, logs one line and publishes a ProbeResult. A probe sends no mail and
 * does not touch the completed leases.
 */
import type { ProbeJob, ProbeResult } from '@secondary-mx/contracts';
import type { Logger } from '@secondary-mx/logger';
import type { WorkerObserver } from './metrics.ts';
import type { NextHopResolver } from './next-hop.ts';
import { localVerdict } from './reply-classification.ts';
import { type ProbeAnswer, type ProbeOptions, probeHops } from './smtp-probe.ts';

export interface ProbeHandlerOptions {
  nextHops: NextHopResolver;
  probe: ProbeOptions;
  /** Publishes a result and resolves once RabbitMQ confirmed it. It may retry until `retryUntil`. */
  publishResult: (result: ProbeResult, retryUntil: number) => Promise<void>;
  logger: Logger;
  metrics?: Pick<WorkerObserver, 'countProbe'>;
}

export function createProbeHandler(options: ProbeHandlerOptions): (job: ProbeJob) => Promise<void> {
  const { nextHops, publishResult, logger } = options;

  const probe = async (job: ProbeJob): Promise<ProbeAnswer> => {
    try {
      const plan = await nextHops.resolveBefore(job.domain, job.primaryHosts, job.deadline);
      if (!plan.ok) {
        return { ok: false, reply: plan.verdict.reply };
      }
      return await probeHops(job.domain, plan.hops, options.probe, job.deadline);
    } catch (error) {
      logger.error(
        { err: error, probeId: job.probeId, domain: job.domain },
        'probe failed unexpectedly, reporting it as not answered',
      );
      const { reply } = localVerdict('internalError', 'probe failed in the delivery worker');
      return { ok: false, reply };
    }
  };

  return async (job) => {
    const startedAt = Date.now();
    if (job.deadline <= startedAt) {
      logger.info(
        { probeId: job.probeId, domain: job.domain, deadline: job.deadline },
        'probe arrived after its deadline, dropped',
      );
      return;
    }
    const answer = await probe(job);
    logger.info(
      {
        probeId: job.probeId,
        domain: job.domain,
        host: answer.remoteMta ?? 'none',
        relay: answer.relay ?? 'none',
        ok: answer.ok,
        reply: answer.reply,
        durationMs: Date.now() - startedAt,
      },
      answer.ok ? 'next hop answered the probe' : 'no next hop answered the probe',
    );
    options.metrics?.countProbe(answer.ok);
    const result: ProbeResult = {
      kind: 'probe',
      probeId: job.probeId,
      domain: job.domain,
      ok: answer.ok,
      reply: answer.reply,
      remoteMta: answer.remoteMta,
      attemptedAt: startedAt,
    };
    await publishResult(result, job.deadline);
  };
}
