// Writes a resource file of N WorkloadEndpoints for timing `podway apply -f` (bench/README.md,
// "Applying many resources"): each one as a CNI plugin or calicoctl user would give it (no
// metadata.name: Calico computes it from the spec), spread over 100 nodes and 10 namespaces, each
// with its own /32 (10.128.0.0/9, so up to 8M of them).
//
// Usage: node dist/bench/apply/make-yaml.js N FILE [--broken K]
//   --broken K: document K (1-based) has an unknown field (the whole file is then refused).
import { writeFileSync } from 'node:fs';

function usage(): never {
  process.stderr.write('usage: node dist/bench/apply/make-yaml.js N FILE [--broken K]\n');
  process.exit(2);
}

export function workloadEndpointsYaml(n: number, broken?: number): string {
  const docs: string[] = [];
  for (let i = 0; i < n; i++) {
    const ip = 0x0a800000 + i; // 10.128.0.0 + i
    const addr = [ip >>> 24, (ip >>> 16) & 255, (ip >>> 8) & 255, ip & 255].join('.');
    const iface = `cali${(i + 0x10000000).toString(16).padStart(11, '0')}`;
    docs.push(
      'apiVersion: projectcalico.org/v3\n'
      + 'kind: WorkloadEndpoint\n'
      + 'metadata:\n'
      + `  namespace: ns${i % 10}\n`
      + '  labels:\n'
      + `    app: app${i % 50}\n`
      + 'spec:\n'
      + `  node: node${i % 100}\n`
      + '  orchestrator: k8s\n'
      + `  pod: pod-${i}\n`
      + '  endpoint: eth0\n'
      + `  interfaceName: ${iface}\n`
      + `  ipNetworks: [${addr}/32]\n`
      + '  profiles: [kns.default]\n'
      + (broken === i + 1 ? '  colour: blue\n' : ''),
    );
  }
  return docs.join('---\n');
}

if (require.main === module) {
  const args = process.argv.slice(2);
  const bi = args.indexOf('--broken');
  const broken = bi >= 0 ? Number(args.splice(bi, 2)[1]) : undefined;
  const [nText, file] = args;
  const n = Number(nText);
  if (!file || !Number.isInteger(n) || n < 1 || (broken !== undefined && !Number.isInteger(broken))) usage();
  writeFileSync(file, workloadEndpointsYaml(n, broken));
  process.stdout.write(`${file}: ${n} WorkloadEndpoints\n`);
}
