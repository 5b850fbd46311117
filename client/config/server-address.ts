/**
 * The server address of transfer.info line 1 and `--server` (docs/protocol.md §8): `host:port`,
 * `a.b.c.d:port` or `[IPv6]:port`.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { MAX_PORT, parsePort } from '../../shared/validators';

const MAX_HOSTNAME_LENGTH = 253;
const HOSTNAME_LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

export interface ServerAddress {
  /** Host name or IP address, without brackets. */
  readonly host: string;
  readonly port: number;
  /** As people write it: `host:port`, `[v6]:port`. */
  readonly display: string;
}

/** Parses `host:port`, `a.b.c.d:port` or `[IPv6]:port`; returns a problem text when invalid. */
export function parseServerAddress(text: string): ServerAddress | string {
  const value = text.trim();
  if (value === '') return 'the server address is empty; expected host:port';
  let host: string;
  let portText: string;
  const bracketed = /^\[([^\]]*)\]:(.*)$/.exec(value);
  if (bracketed) {
    host = bracketed[1];
    portText = bracketed[2];
    if (!isIPv6(host)) return `"${host}" in brackets is not an IPv6 address`;
  } else {
    const colon = value.lastIndexOf(':');
    if (colon < 0) return `"${value}" has no port; expected host:port, e.g. 127.0.0.1:1256`;
    host = value.slice(0, colon);
    portText = value.slice(colon + 1);
    if (host.includes(':') || value.startsWith('[')) {
      return `"${value}": write an IPv6 address in brackets, e.g. [::1]:1256`;
    }
    const problem = hostProblem(host);
    if (problem) return problem;
  }
  const port = parsePort(portText);
  if (port === undefined) return `port "${portText}" is not a number from 1 to ${MAX_PORT}`;
  // Only the bracketed form can hold an IPv6 address (the other refuses colons); not asking
  // isIPv6 again spares every fresh process compiling its large pattern.
  return { host, port, display: bracketed ? `[${host}]:${port}` : `${host}:${port}` };
}

function hostProblem(host: string): string | undefined {
  if (host === '') return 'the host is empty; expected host:port';
  if (/^[\d.]+$/.test(host)) {
    return isIPv4(host) ? undefined : `"${host}" is not a valid IPv4 address`;
  }
  const name = host.endsWith('.') ? host.slice(0, -1) : host;
  if (name.length > MAX_HOSTNAME_LENGTH || !name.split('.').every((l) => HOSTNAME_LABEL.test(l))) {
    return `"${host}" is not a valid host name or IPv4 address`;
  }
  return undefined;
}
