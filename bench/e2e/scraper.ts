/**
 * `node scraper.js URL [intervalMs]`: GET URL every interval (default 1 s) until killed, as a
 * Prometheus server scrapes; the bench runs it inside a podway node's namespace when that podway
 * serves metrics (`--podway-args "--metrics-port 9091"`), so the pps it measures include scraping.
 * Prints one line at exit: scrapes done and failed.
 */
import { request } from 'node:http';

const url = process.argv[2];
const every = Number(process.argv[3] ?? 1000);
let ok = 0;
let failed = 0;

function scrape(): void {
  const req = request(url, { timeout: 5000 }, (res) => {
    res.resume();
    res.on('end', () => (res.statusCode === 200 ? ok++ : failed++));
  });
  req.on('timeout', () => req.destroy(new Error('timed out')));
  req.on('error', () => failed++);
  req.end();
}

const timer = setInterval(scrape, every);
scrape();
const stop = () => {
  clearInterval(timer);
  process.stdout.write(`${ok} scrapes, ${failed} failed\n`);
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
