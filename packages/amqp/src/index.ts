export type { ConsumeMessage } from 'amqplib';
export {
  BROKER_ERROR_KINDS,
  Broker,
  type BrokerErrorKind,
  type BrokerOptions,
  BrokerUnavailableError,
  type ConsumeOptions,
  RpcTimeoutError,
  RpcUnroutableError,
} from './broker.ts';
export { queueOptions } from './topology.ts';
