/**
 * The RabbitMQ connection of one service: connects and reconnects with backoff, declares the
 * queues it uses, publishes with publisher confirms, consumes with manual acknowledgements and
 * makes RPC calls over direct reply-to.
 *
 * Invariants: a message handed to a consumer is acknowledged only after its handler resolved;
 * a handler that throws gets the message requeued. After a lost connection every consumer is
 * set up again on the new one, until stopConsuming() is called.
 */
import { randomUUID } from 'node:crypto';
import { EXCHANGE, prefixed } from '@secondary-mx/contracts';
import type { Logger } from '@secondary-mx/logger';
import amqp, {
  type Channel,
  type ChannelModel,
  type ConfirmChannel,
  type ConsumeMessage,
  type Options,
} from 'amqplib';
import { queueOptions } from './topology.ts';

export class BrokerUnavailableError extends Error {
  override name = 'BrokerUnavailableError';
}

export class RpcTimeoutError extends Error {
  override name = 'RpcTimeoutError';
}

export class RpcUnroutableError extends Error {
  override name = 'RpcUnroutableError';
}

/**
 * Kinds of RabbitMQ failures reported to error listeners: a connection attempt failed, an open
 * connection was lost, a channel failed, or the broker did not confirm a publish.
 */
export const BROKER_ERROR_KINDS = ['connect', 'connection', 'channel', 'publish'] as const;
export type BrokerErrorKind = (typeof BROKER_ERROR_KINDS)[number];

export interface BrokerOptions {
  url: string;
  prefix: string;
  logger: Logger;
  /** Shown in the RabbitMQ management UI as the connection name. */
  connectionName: string;
}

export interface ConsumeOptions {
  prefetch: number;
}

type MessageHandler = (message: ConsumeMessage, channel: Channel) => Promise<void>;
type RpcHandler = (content: Buffer, message: ConsumeMessage) => Promise<Buffer>;
type EventHandler = (content: Buffer) => Promise<void> | void;

interface ConsumerSpec {
  kind: 'queue' | 'events';
  name: string;
  prefetch: number;
  handler: MessageHandler;
  channel?: Channel;
  consumerTag?: string;
  /** When a handler failure was last logged, in epoch milliseconds. */
  failureLoggedAt?: number;
  /** Handler failures since then that were not logged. */
  failuresNotLogged?: number;
}

interface PendingCall {
  resolve: (content: Buffer) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 15_000;
/**
 * Limit for the TCP connect and the AMQP handshake. Without it, a broker that accepts the
 * connection but never replies would stall reconnection for good.
 */
const CONNECT_TIMEOUT_MS = 10_000;
const REQUEUE_DELAY_MS = 1000;
/**
 * Shortest time between two log lines about failed handlers of one queue. While PostgreSQL is
 * down, every message in a queue fails again after each REQUEUE_DELAY_MS.
 */
const FAILURE_LOG_INTERVAL_MS = 10_000;
const DIRECT_REPLY_TO = 'amq.rabbitmq.reply-to';

export class Broker {
  private connection: ChannelModel | undefined;
  private publisher: ConfirmChannel | undefined;
  private rpcChannel: Channel | undefined;
  /** Queues this connection's publisher has declared, so a publish never goes to no queue. */
  private declaredQueues = new Set<string>();
  private readonly consumers: ConsumerSpec[] = [];
  private readonly pendingCalls = new Map<string, PendingCall>();
  private readonly connectWaiters: (() => void)[] = [];
  private inFlight = 0;
  private readonly idleWaiters: (() => void)[] = [];
  /** Set by close(): no reconnection from then on. */
  private stopping = false;
  /** Cleared by stopConsuming(): consumers are not set up again after a reconnection. */
  private consuming = true;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private readonly errorListeners: ((kind: BrokerErrorKind) => void)[] = [];

  constructor(private readonly options: BrokerOptions) {}

  get connected(): boolean {
    return this.publisher !== undefined;
  }

  /** Calls the listener on every failure of a kind in BROKER_ERROR_KINDS, for error metrics. */
  onError(listener: (kind: BrokerErrorKind) => void): void {
    this.errorListeners.push(listener);
  }

  private reportError(kind: BrokerErrorKind): void {
    for (const listener of this.errorListeners) {
      listener(kind);
    }
  }

  /** Returns the prefixed name of a queue or exchange. */
  name(base: string): string {
    return prefixed(this.options.prefix, base);
  }

  /** Connects, retrying with backoff until it succeeds; resolves on the first connection. */
  start(): Promise<void> {
    const connected = new Promise<void>((resolve) => this.connectWaiters.push(resolve));
    void this.connect();
    return connected;
  }

  /** Resolves once the broker is connected, or at once if it is. */
  whenConnected(): Promise<void> {
    if (this.connected) {
      return Promise.resolve();
    }
    return new Promise((resolve) => this.connectWaiters.push(resolve));
  }

  private async connect(): Promise<void> {
    if (this.stopping) {
      return;
    }
    const log = this.options.logger;
    this.attempt += 1;
    try {
      // Without TCP_NODELAY, Nagle's algorithm holds back the small RPC frames until the
      // peer's delayed ACK, which adds about 40 ms to every request and reply.
      const connection = await amqp.connect(this.options.url, {
        clientProperties: { connection_name: this.options.connectionName },
        noDelay: true,
        timeout: CONNECT_TIMEOUT_MS,
      });
      if (this.stopping) {
        // close() ran while the connection was being opened.
        await connection.close().catch(() => undefined);
        return;
      }
      connection.on('error', (error: Error) =>
        log.warn({ err: error }, 'RabbitMQ connection error'),
      );
      connection.on('close', () => this.onConnectionLost(connection));
      connection.on('blocked', (reason: string) =>
        log.warn({ reason }, 'RabbitMQ blocked publishing'),
      );
      connection.on('unblocked', () => log.info('RabbitMQ unblocked publishing'));
      this.connection = connection;

      const publisher = await connection.createConfirmChannel();
      publisher.on('error', (error: Error) => {
        this.reportError('channel');
        log.warn({ err: error }, 'RabbitMQ publish channel error');
      });
      publisher.on('close', () => this.onChannelLost(connection));
      await publisher.assertExchange(this.name(EXCHANGE.control), 'fanout', { durable: true });

      const rpcChannel = await connection.createChannel();
      rpcChannel.on('error', (error: Error) => {
        this.reportError('channel');
        log.warn({ err: error }, 'RabbitMQ RPC channel error');
      });
      rpcChannel.on('close', () => this.onChannelLost(connection));
      rpcChannel.on('return', (message: ConsumeMessage) => this.onReturned(message));
      await rpcChannel.consume(DIRECT_REPLY_TO, (message) => this.onReply(message), {
        noAck: true,
      });

      if (this.consuming) {
        for (const consumer of this.consumers) {
          await this.startConsumer(connection, consumer);
        }
      }
      this.declaredQueues = new Set();
      this.publisher = publisher;
      this.rpcChannel = rpcChannel;
      if (this.attempt > 1) {
        log.info({ attempts: this.attempt }, 'RabbitMQ reconnected');
      } else {
        log.info('RabbitMQ connected');
      }
      this.attempt = 0;
      for (const resolve of this.connectWaiters.splice(0)) {
        resolve();
      }
    } catch (error) {
      this.reportError('connect');
      const delay = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** Math.min(this.attempt, 10));
      log.warn(
        { err: error, attempt: this.attempt, retryInMs: delay },
        'RabbitMQ connection failed, retrying',
      );
      await this.dropConnection();
      this.scheduleReconnect(delay);
    }
  }

  private scheduleReconnect(delay: number): void {
    if (this.stopping || this.reconnectTimer) {
      return;
    }
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      void this.connect();
    }, delay);
  }

  private onChannelLost(connection: ChannelModel): void {
    if (this.stopping || connection !== this.connection) {
      return;
    }
    // A closed channel loses its consumers and confirms; start over on a fresh connection.
    void connection.close().catch(() => undefined);
  }

  private onConnectionLost(connection: ChannelModel): void {
    if (connection !== this.connection) {
      return;
    }
    this.connection = undefined;
    this.publisher = undefined;
    this.rpcChannel = undefined;
    for (const consumer of this.consumers) {
      consumer.channel = undefined;
      consumer.consumerTag = undefined;
    }
    this.rejectPendingCalls('RabbitMQ connection lost before the reply');
    if (this.stopping) {
      return;
    }
    this.reportError('connection');
    this.options.logger.warn('RabbitMQ connection lost, reconnecting');
    this.attempt = 1;
    this.scheduleReconnect(RECONNECT_MIN_MS);
  }

  private rejectPendingCalls(message: string): void {
    for (const [id, call] of this.pendingCalls) {
      clearTimeout(call.timer);
      call.reject(new BrokerUnavailableError(message));
      this.pendingCalls.delete(id);
    }
  }

  private async dropConnection(): Promise<void> {
    const connection = this.connection;
    const channels = [
      ...this.consumers.map((consumer) => consumer.channel),
      this.publisher,
      this.rpcChannel,
    ];
    this.connection = undefined;
    this.publisher = undefined;
    this.rpcChannel = undefined;
    for (const consumer of this.consumers) {
      consumer.channel = undefined;
      consumer.consumerTag = undefined;
    }
    if (!connection) {
      return;
    }
    // Closing each channel first flushes the acks written on it; closing the connection at
    // once can lose them, and RabbitMQ would then deliver finished work a second time.
    for (const channel of channels) {
      await channel?.close().catch(() => undefined);
    }
    await connection.close().catch(() => undefined);
  }

  private async startConsumer(connection: ChannelModel, consumer: ConsumerSpec): Promise<void> {
    const channel = await connection.createChannel();
    channel.on('error', (error: Error) => {
      this.reportError('channel');
      this.options.logger.warn(
        { err: error, queue: consumer.name },
        'RabbitMQ consumer channel error',
      );
    });
    channel.on('close', () => this.onChannelLost(connection));
    await channel.prefetch(consumer.prefetch);
    let queue = consumer.name;
    if (consumer.kind === 'events') {
      const exchange = this.name(consumer.name);
      await channel.assertExchange(exchange, 'fanout', { durable: true });
      const declared = await channel.assertQueue('', { exclusive: true, autoDelete: true });
      await channel.bindQueue(declared.queue, exchange, '');
      queue = declared.queue;
    } else {
      await channel.assertQueue(queue, queueOptions(this.options.prefix, queue));
    }
    const reply = await channel.consume(queue, (message) => {
      if (message === null) {
        // The broker cancelled the consumer, for example because the queue was deleted.
        this.onChannelLost(connection);
        return;
      }
      void this.dispatch(channel, consumer, message);
    });
    consumer.channel = channel;
    consumer.consumerTag = reply.consumerTag;
  }

  private async dispatch(channel: Channel, consumer: ConsumerSpec, message: ConsumeMessage) {
    this.inFlight += 1;
    try {
      await consumer.handler(message, channel);
      channel.ack(message);
    } catch (error) {
      this.logHandlerFailure(consumer, error);
      // A short pause keeps a failing handler (database down, say) from spinning on one message.
      setTimeout(() => {
        try {
          channel.nack(message, false, true);
        } catch {
          // The channel is gone; the broker requeues unacknowledged messages by itself.
        }
      }, REQUEUE_DELAY_MS);
    } finally {
      this.inFlight -= 1;
      if (this.inFlight === 0) {
        for (const resolve of this.idleWaiters.splice(0)) {
          resolve();
        }
      }
    }
  }

  /**
   * Logs a failed handler at most once per FAILURE_LOG_INTERVAL_MS and queue. `suppressed` counts
   * the failures since the previous line that were not logged.
   */
  private logHandlerFailure(consumer: ConsumerSpec, error: unknown): void {
    const now = Date.now();
    if (
      consumer.failureLoggedAt !== undefined &&
      now - consumer.failureLoggedAt < FAILURE_LOG_INTERVAL_MS
    ) {
      consumer.failuresNotLogged = (consumer.failuresNotLogged ?? 0) + 1;
      return;
    }
    this.options.logger.error(
      { err: error, queue: consumer.name, suppressed: consumer.failuresNotLogged ?? 0 },
      'message handler failed, requeueing the message',
    );
    consumer.failureLoggedAt = now;
    consumer.failuresNotLogged = 0;
  }

  private addConsumer(spec: ConsumerSpec): void {
    this.consumers.push(spec);
    const connection = this.connection;
    if (connection && this.connected && this.consuming) {
      void this.startConsumer(connection, spec).catch((error: unknown) => {
        this.options.logger.warn({ err: error, queue: spec.name }, 'starting a consumer failed');
        this.onChannelLost(connection);
      });
    }
  }

  /**
   * Consumes a work queue. The message is acknowledged when the handler resolves and requeued
   * when it throws.
   */
  consume(baseQueue: string, handler: MessageHandler, options: ConsumeOptions): void {
    this.addConsumer({
      kind: 'queue',
      name: this.name(baseQueue),
      prefetch: options.prefetch,
      handler,
    });
  }

  /** Serves RPC requests on a queue; the handler's result is sent to the caller's reply-to. */
  serve(baseQueue: string, handler: RpcHandler, options: ConsumeOptions): void {
    const name = this.name(baseQueue);
    this.addConsumer({
      kind: 'queue',
      name,
      prefetch: options.prefetch,
      handler: async (message, channel) => {
        const reply = await handler(message.content, message);
        const { replyTo, correlationId } = message.properties;
        if (replyTo) {
          channel.sendToQueue(replyTo, reply, {
            correlationId,
            contentType: 'application/octet-stream',
          });
        }
      },
    });
  }

  /** Receives every control event on an exclusive queue bound to the control exchange. */
  subscribe(baseExchange: string, handler: EventHandler): void {
    this.addConsumer({
      kind: 'events',
      name: baseExchange,
      prefetch: 10,
      handler: async (message) => {
        await handler(message.content);
      },
    });
  }

  /** Publishes to a queue and resolves once the broker confirmed it. */
  async publish(baseQueue: string, content: Buffer, options: Options.Publish = {}): Promise<void> {
    const publisher = this.publisher;
    if (!publisher) {
      throw new BrokerUnavailableError('RabbitMQ is not connected');
    }
    const queue = this.name(baseQueue);
    if (!this.declaredQueues.has(queue)) {
      await publisher.assertQueue(queue, queueOptions(this.options.prefix, queue));
      this.declaredQueues.add(queue);
    }
    await new Promise<void>((resolve, reject) => {
      publisher.sendToQueue(queue, content, { persistent: true, ...options }, (error) => {
        if (error) {
          this.reportError('publish');
          reject(new BrokerUnavailableError(`RabbitMQ did not confirm the publish to ${queue}`));
        } else {
          resolve();
        }
      });
    });
  }

  /** Publishes an event to a fanout exchange and resolves once the broker confirmed it. */
  async publishEvent(baseExchange: string, content: Buffer): Promise<void> {
    const publisher = this.publisher;
    if (!publisher) {
      throw new BrokerUnavailableError('RabbitMQ is not connected');
    }
    const exchange = this.name(baseExchange);
    await new Promise<void>((resolve, reject) => {
      publisher.publish(exchange, '', content, { persistent: false }, (error) => {
        if (error) {
          this.reportError('publish');
          reject(new BrokerUnavailableError(`RabbitMQ did not confirm the event on ${exchange}`));
        } else {
          resolve();
        }
      });
    });
  }

  /**
   * Sends an RPC request and resolves with the reply's content. Rejects with RpcTimeoutError
   * when no reply came within timeoutMs, RpcUnroutableError when no server has declared the
   * queue, and BrokerUnavailableError while RabbitMQ is down.
   */
  call(baseQueue: string, content: Buffer, timeoutMs: number): Promise<Buffer> {
    const channel = this.rpcChannel;
    if (!channel) {
      return Promise.reject(new BrokerUnavailableError('RabbitMQ is not connected'));
    }
    const queue = this.name(baseQueue);
    const correlationId = randomUUID();
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pendingCalls.delete(correlationId);
        reject(new RpcTimeoutError(`no reply on ${queue} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pendingCalls.set(correlationId, { resolve, reject, timer });
      try {
        channel.sendToQueue(queue, content, {
          correlationId,
          replyTo: DIRECT_REPLY_TO,
          mandatory: true,
          expiration: String(Math.max(1, Math.ceil(timeoutMs))),
          contentType: 'application/octet-stream',
        });
      } catch (error) {
        clearTimeout(timer);
        this.pendingCalls.delete(correlationId);
        this.reportError('publish');
        reject(
          new BrokerUnavailableError(`publishing to ${queue} failed: ${(error as Error).message}`),
        );
      }
    });
  }

  /**
   * Returns how many consumers a queue has, 0 when the queue does not exist, or undefined while
   * RabbitMQ is not connected. It uses a channel of its own, because the passive declare of a
   * missing queue closes the channel it runs on.
   */
  async consumerCount(baseQueue: string): Promise<number | undefined> {
    const connection = this.connection;
    if (!connection || !this.connected) {
      return undefined;
    }
    const channel = await connection.createChannel();
    // A missing queue fails the channel with 404; the rejected checkQueue reports it.
    channel.on('error', () => undefined);
    try {
      const { consumerCount } = await channel.checkQueue(this.name(baseQueue));
      return consumerCount;
    } catch (error) {
      if ((error as { code?: unknown }).code === 404) {
        return 0;
      }
      throw error;
    } finally {
      await channel.close().catch(() => undefined);
    }
  }

  private onReply(message: ConsumeMessage | null): void {
    if (!message) {
      return;
    }
    const id = message.properties.correlationId as string | undefined;
    const call = id ? this.pendingCalls.get(id) : undefined;
    if (!call || !id) {
      return;
    }
    clearTimeout(call.timer);
    this.pendingCalls.delete(id);
    call.resolve(message.content);
  }

  private onReturned(message: ConsumeMessage): void {
    const id = message.properties.correlationId as string | undefined;
    const call = id ? this.pendingCalls.get(id) : undefined;
    if (!call || !id) {
      return;
    }
    clearTimeout(call.timer);
    this.pendingCalls.delete(id);
    call.reject(new RpcUnroutableError(`no consumer has declared ${message.fields.routingKey}`));
  }

  /**
   * Cancels every consumer and waits up to timeoutMs for the handlers in progress to finish.
   * Resolves true when none is left. Publishing and RPC calls keep working until close(), so
   * the handlers can still send their results.
   */
  async stopConsuming(timeoutMs: number): Promise<boolean> {
    this.consuming = false;
    for (const consumer of this.consumers) {
      if (consumer.channel && consumer.consumerTag) {
        await consumer.channel.cancel(consumer.consumerTag).catch(() => undefined);
        consumer.consumerTag = undefined;
      }
    }
    if (this.inFlight === 0) {
      return true;
    }
    let timer: NodeJS.Timeout | undefined;
    const idle = await Promise.race([
      new Promise<boolean>((resolve) => this.idleWaiters.push(() => resolve(true))),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    return idle;
  }

  /**
   * Closes the connection and stops reconnecting. Unacknowledged messages go back to their
   * queues, and RPC calls still waiting for a reply fail with BrokerUnavailableError.
   */
  async close(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    await this.dropConnection();
    this.rejectPendingCalls('RabbitMQ connection closed before the reply');
  }

  /** Stops consuming, waits up to timeoutMs for handlers in progress, then closes. */
  async stop(timeoutMs = 10_000): Promise<void> {
    await this.stopConsuming(timeoutMs);
    await this.close();
  }
}
