/**
 * `node http-get.js URL`: one GET (bounded to 5 s), printed as one JSON line {status, body}.
 * The metrics tests run it inside a node's network namespace (`ip netns exec`), where podway's
 * metrics port listens.
 */
import { request } from 'node:http';

const url = process.argv[2];
const req = request(url, { timeout: 5000 }, (res) => {
  let body = '';
  res.setEncoding('utf8');
  res.on('data', (d: string) => (body += d));
  res.on('end', () => process.stdout.write(JSON.stringify({ status: res.statusCode, body }) + '\n'));
});
req.on('timeout', () => req.destroy(new Error('timed out')));
req.on('error', (e) => {
  process.stdout.write(JSON.stringify({ status: 0, body: '', error: e.message }) + '\n');
});
req.end();
