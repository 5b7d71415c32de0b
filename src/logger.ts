/**
 * A structured logger, pino-style: `logger.info({ entity, inserted }, 'entity synced')`. A pino
 * or bunyan logger fits as it is; `console` fits too, printing the object then the message.
 */
export interface Logger {
  info(data: Record<string, unknown>, message: string): void;
  warn(data: Record<string, unknown>, message: string): void;
  error(data: Record<string, unknown>, message: string): void;
  debug?(data: Record<string, unknown>, message: string): void;
}

/** The default logger: says nothing. Pass a logger to see what a sync does. */
export const silentLogger: Logger = {
  info() {},
  warn() {},
  error() {},
  debug() {},
};
