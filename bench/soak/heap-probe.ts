// The heap of every thread of a Node process started with --inspect=127.0.0.1:PORT, after a full
// garbage collection in each: `node --experimental-websocket dist/bench/soak/heap-probe.js PORT`
// (run where that address is reached: `ip netns exec NS ...`). Prints one JSON object
// {main: usedBytes, "<worker title or url>#<id>": usedBytes, ...}. Used by bench/soak/churn.ts
// --inspect; the inspector's NodeWorker domain reaches the worker threads (model thread, workers).
const WS = (globalThis as unknown as { WebSocket: new (url: string) => any }).WebSocket;

async function main(): Promise<void> {
  const port = Number(process.argv[2]);
  const list = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as { webSocketDebuggerUrl: string }[];
  const ws = new WS(list[0].webSocketDebuggerUrl);
  await new Promise((res, rej) => {
    ws.onopen = res;
    ws.onerror = rej;
  });
  let next = 1;
  const pending = new Map<number, (r: any) => void>();
  const workerPending = new Map<string, (r: any) => void>();
  const workers: { sessionId: string; name: string }[] = [];
  ws.onmessage = (ev: { data: string }) => {
    const m = JSON.parse(ev.data);
    if (m.id && pending.has(m.id)) {
      pending.get(m.id)!(m);
      pending.delete(m.id);
    } else if (m.method === 'NodeWorker.attachedToWorker') {
      workers.push({ sessionId: m.params.sessionId, name: `${m.params.workerInfo.url.split('/').pop()}#${m.params.workerInfo.workerId}` });
    } else if (m.method === 'NodeWorker.receivedMessageFromWorker') {
      const inner = JSON.parse(m.params.message);
      const key = `${m.params.sessionId}:${inner.id}`;
      if (inner.id && workerPending.has(key)) {
        workerPending.get(key)!(inner);
        workerPending.delete(key);
      }
    }
  };
  const call = (method: string, params: object = {}) => new Promise<any>((res) => {
    const id = next++;
    pending.set(id, res);
    ws.send(JSON.stringify({ id, method, params }));
  });
  const callWorker = (sessionId: string, method: string, params: object = {}) => new Promise<any>((res) => {
    const id = next++;
    workerPending.set(`${sessionId}:${id}`, res);
    void call('NodeWorker.sendMessageToWorker', { sessionId, message: JSON.stringify({ id, method, params }) });
  });
  const out: Record<string, number> = {};
  await call('HeapProfiler.collectGarbage');
  out.main = (await call('Runtime.getHeapUsage')).result.usedSize;
  await call('NodeWorker.enable', { waitForDebuggerOnStart: false });
  await new Promise((r) => setTimeout(r, 500));
  for (const w of workers) {
    await callWorker(w.sessionId, 'HeapProfiler.collectGarbage');
    const u = await callWorker(w.sessionId, 'Runtime.getHeapUsage');
    out[w.name] = u.result?.usedSize ?? -1;
  }
  await call('NodeWorker.disable');
  console.log(JSON.stringify(out));
  ws.close();
}

const t = setTimeout(() => {
  console.log('{}');
  process.exit(0);
}, 20_000);
main().then(() => {
  clearTimeout(t);
  process.exit(0);
}, (e) => {
  console.error(e);
  process.exit(1);
});
