/**
 * A minimal Prometheus registry (text format 0.0.4): counters with labels and gauges read at
 * scrape time. Small enough that a dependency would not pay for itself.
 */
type Labels = Record<string, string>;

interface Counter {
  help: string;
  values: Map<string, number>;
}

function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

export class Metrics {
  private readonly counters = new Map<string, Counter>();
  private readonly gauges = new Map<string, { help: string; read: () => Promise<Array<[Labels, number]>> }>();

  counter(name: string, help: string): (labels?: Labels, by?: number) => void {
    const c: Counter = { help, values: new Map() };
    this.counters.set(name, c);
    return (labels = {}, by = 1) => {
      const key = labelText(labels);
      c.values.set(key, (c.values.get(key) ?? 0) + by);
    };
  }

  gauge(name: string, help: string, read: () => Promise<Array<[Labels, number]>>): void {
    this.gauges.set(name, { help, read });
  }

  async render(): Promise<string> {
    const lines: string[] = [];
    for (const [name, c] of this.counters) {
      lines.push(`# HELP ${name} ${c.help}`, `# TYPE ${name} counter`);
      for (const [labels, v] of c.values) lines.push(`${name}${labels} ${v}`);
    }
    for (const [name, g] of this.gauges) {
      lines.push(`# HELP ${name} ${g.help}`, `# TYPE ${name} gauge`);
      for (const [labels, v] of await g.read()) lines.push(`${name}${labelText(labels)} ${v}`);
    }
    return lines.join('\n') + '\n';
  }
}
