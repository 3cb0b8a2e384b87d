/**
 * Publishing of control events (domain changes, flush requests, queue changes) on the control
 * exchange. The events only speed things up: ingress also reloads its domains periodically and
 * queue-store's scheduler and maintenance find due recipients and pending DSNs by themselves,
 * so a failed publish is logged and not retried.
 */
import type { Broker } from '@secondary-mx/amqp';
import { type ControlEvent, ControlEventSchema, EXCHANGE } from '@secondary-mx/contracts';
import type { FastifyBaseLogger } from 'fastify';

function domainOf(event: ControlEvent): string | undefined {
  return 'domain' in event ? event.domain : undefined;
}

/** Maximum wait for the broker's confirm, so a stalled connection cannot hold up a reply. */
const PUBLISH_TIMEOUT_MS = 5000;

/** Publishes one event as JSON. Resolves to whether RabbitMQ confirmed it. */
export async function publishControlEvent(
  broker: Broker,
  logger: FastifyBaseLogger,
  event: ControlEvent,
): Promise<boolean> {
  const content = Buffer.from(JSON.stringify(ControlEventSchema.parse(event)), 'utf8');
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no confirm from RabbitMQ within ${PUBLISH_TIMEOUT_MS} ms`)),
      PUBLISH_TIMEOUT_MS,
    );
  });
  try {
    if (!broker.connected) {
      publishWhenConnected(broker, logger, event, content);
      return false;
    }
    await Promise.race([broker.publishEvent(EXCHANGE.control, content), timeout]);
    return true;
  } catch (error) {
    logger.warn(
      { err: error, event: event.type, domain: domainOf(event) },
      'publishing the control event failed, so other services pick up the change on their next poll',
    );
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Publishes an event made while RabbitMQ is not connected, such as a domain approved while
 * admin-api is still starting, once it is connected, so that other services need not wait for
 * their next poll. The request that made the change does not wait for it.
 */
function publishWhenConnected(
  broker: Broker,
  logger: FastifyBaseLogger,
  event: ControlEvent,
  content: Buffer,
): void {
  logger.info(
    { event: event.type, domain: domainOf(event) },
    'RabbitMQ is not connected, the control event is published once it is',
  );
  void broker
    .whenConnected()
    .then(() => broker.publishEvent(EXCHANGE.control, content))
    .catch((error: unknown) => {
      logger.warn(
        { err: error, event: event.type, domain: domainOf(event) },
        'publishing the control event failed, so other services pick up the change on their next poll',
      );
    });
}
