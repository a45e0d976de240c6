/**
 * The Experiments panel (left sidebar): the workspace's A/B experiments with status, traffic and arms;
 * selecting one shows its report as the server computed it (`GET proml/experiments/<name>`): the decision
 * hint and its reasons, the sample-ratio-mismatch check, members per arm, and every metric's lift with its
 * confidence interval (a table and a chart). Nothing is computed here.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { IExperiment, IExperimentMetric, IExperimentReport, requestAPI } from './api';
import { el, errorText } from './dom';

const ICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24"><path class="jp-icon3" fill="#616161" ' +
  'd="M9 2v2h1v5.3L4.4 19A2 2 0 0 0 6.1 22h11.8a2 2 0 0 0 1.7-3L14 9.3V4h1V2zm3 2h0v5.8l2 3.2H10l2-3.2z"/></svg>';
export const experimentsIcon = new LabIcon({ name: 'jupyterlab-proml:experiments', svgstr: ICON_SVG });
const SVG_NS = 'http://www.w3.org/2000/svg';

function num(value: number | null | undefined, digits = 4): string {
  return value === null || value === undefined ? '' : value.toPrecision(digits);
}

function pval(value: number | null | undefined): string {
  if (value === null || value === undefined) {
    return '';
  }
  return value < 0.001 ? value.toExponential(1) : value.toPrecision(2);
}

function pct(value: number | null | undefined): string {
  return value === null || value === undefined ? '' : `${value >= 0 ? '+' : ''}${(100 * value).toFixed(2)}%`;
}

function arms(e: IExperiment): string {
  const total = e.arms.reduce((s, a) => s + a.weight, 0);
  return e.arms.map(a => `${a.name}→${a.alias} ${Math.round((100 * a.weight) / total)}%`).join(', ');
}

function table(head: string[], rows: (string | Node)[][], cls: string): HTMLDivElement {
  const body = el('tbody', {}, ...rows.map(cells => el('tr', {}, ...cells.map(c => el('td', {}, c)))));
  return el(
    'div',
    { class: 'proml-scroll' },
    el('table', { class: `proml-table ${cls}` }, el('thead', {}, el('tr', {}, ...head.map(h => el('th', {}, h)))), body)
  );
}

/** A forest plot: each treatment metric's relative lift (dot) and its confidence interval (bar) around 0. */
function liftChart(rows: IExperimentMetric[], alpha: number): SVGSVGElement {
  const width = 300;
  const rowH = 20;
  const left = 120;
  const height = rows.length * rowH + 36;
  const bounds = rows.flatMap(r => [r.rel_low ?? 0, r.rel_high ?? 0, 0]);
  const lo = Math.min(...bounds);
  const hi = Math.max(...bounds);
  const span = hi - lo || 1;
  const x = (v: number) => left + ((v - lo) / span) * (width - left - 10);
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('class', 'proml-lift-chart');
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('width', String(width));
  const add = (tag: string, attrs: Record<string, string | number>, text?: string) => {
    const node = document.createElementNS(SVG_NS, tag);
    Object.entries(attrs).forEach(([k, v]) => node.setAttribute(k, String(v)));
    if (text !== undefined) {
      node.textContent = text;
    }
    svg.appendChild(node);
    return node;
  };
  add('line', { x1: x(0), x2: x(0), y1: 0, y2: height - 30, class: 'proml-lift-zero' });
  rows.forEach((r, i) => {
    const y = i * rowH + 12;
    const sign = (r.rel_low ?? 0) > 0 ? 'proml-up' : (r.rel_high ?? 0) < 0 ? 'proml-down' : 'proml-flat';
    add('text', { x: 0, y: y + 4, class: 'proml-lift-label' }, `${r.metric} (${r.arm})`);
    add('line', { x1: x(r.rel_low ?? 0), x2: x(r.rel_high ?? 0), y1: y, y2: y, class: `proml-lift-ci ${sign}` });
    add('circle', { cx: x(r.rel_lift ?? 0), cy: y, r: 3.5, class: `proml-lift-dot ${sign}` });
  });
  add('text', { x: left, y: height - 18, class: 'proml-lift-label' }, pct(lo));
  add('text', { x: width - 10, y: height - 18, class: 'proml-lift-label', 'text-anchor': 'end' }, pct(hi));
  add(
    'text',
    { x: (left + width) / 2, y: height - 4, class: 'proml-lift-label', 'text-anchor': 'middle' },
    `relative lift, ${Math.round(100 * (1 - alpha))}% CI`
  );
  return svg;
}

export class ExperimentsPanel extends Widget {
  constructor() {
    super();
    this.id = 'proml-experiments';
    this.addClass('proml-panel');
    this.title.icon = experimentsIcon;
    this.title.caption = 'Experiments';
    const refresh = el('button', { class: 'jp-mod-styled proml-refresh' }, 'Refresh');
    this.list = el('div', { class: 'proml-experiment-list' });
    this.detail = el('div', { class: 'proml-experiment-detail' });
    this.node.append(el('h3', {}, 'Experiments'), el('div', { class: 'proml-row' }, refresh), this.list, this.detail);
    refresh.addEventListener('click', () => void this.refresh());
  }

  protected onAfterAttach(): void {
    void this.refresh();
  }

  /** List the experiments (newest first); the selected one's report is read again. */
  async refresh(): Promise<void> {
    this.list.textContent = 'Loading...';
    try {
      const data = await requestAPI<{ experiments: IExperiment[] }>(['experiments']);
      this.list.textContent = '';
      if (!data.experiments.length) {
        this.list.textContent = 'No experiments yet: proml experiment create NAME --model MODEL --arm ... --arm ...';
        return;
      }
      for (const e of data.experiments.slice().reverse()) {
        const row = el(
          'div',
          { class: 'proml-experiment', 'data-name': e.name, title: e.description || e.name },
          el(
            'div',
            {},
            el('span', { class: 'proml-hit-name' }, e.name),
            ' ',
            el('span', { class: `proml-status proml-status-${e.status}` }, e.status)
          ),
          el('div', { class: 'proml-hit-meta proml-experiment-traffic' }, `${e.model} · traffic ${e.traffic}% of ${e.share}%`),
          el('div', { class: 'proml-hit-meta proml-experiment-arms-text' }, arms(e))
        );
        row.classList.toggle('jp-mod-selected', e.name === this.selected);
        row.addEventListener('click', () => void this.open(e.name));
        this.list.appendChild(row);
      }
      if (this.selected) {
        await this.open(this.selected);
      }
    } catch (error) {
      this.list.textContent = errorText(error);
    }
  }

  /** Read and render one experiment's report. */
  async open(name: string): Promise<void> {
    this.selected = name;
    this.list.querySelectorAll('.proml-experiment').forEach(row => {
      row.classList.toggle('jp-mod-selected', (row as HTMLElement).dataset.name === name);
    });
    this.detail.textContent = `Analyzing ${name}...`;
    try {
      const report = await requestAPI<IExperimentReport>(['experiments', name]);
      if (this.selected === name) {
        this.render(report);
      }
    } catch (error) {
      this.detail.textContent = errorText(error);
    }
  }

  private render(report: IExperimentReport): void {
    const e = report.experiment;
    const parts: Node[] = [el('h4', {}, `${e.name} (${e.model}, ${e.status})`)];
    if (e.description) {
      parts.push(el('p', {}, e.description));
    }
    parts.push(
      table(
        ['Arm', 'Alias', 'Allocation', 'Members'],
        report.arms.map((a, i) => [
          i === 0 ? `${a.name} (control)` : a.name,
          a.alias,
          `${Math.round((100 * a.weight) / report.arms.reduce((s, b) => s + b.weight, 0))}%`,
          a.units.toLocaleString()
        ]),
        'proml-experiment-arms'
      )
    );
    const analysis = report.analysis;
    if (!analysis) {
      parts.push(el('p', { class: 'proml-experiment-empty' }, report.message));
      this.detail.replaceChildren(...parts);
      return;
    }
    const decision = report.decision ?? 'hold';
    parts.push(
      el('div', { class: 'proml-decision', 'data-decision': decision }, `Decision: ${decision}`),
      el('ul', { class: 'proml-reasons' }, ...analysis.reasons.map(r => el('li', {}, r))),
      el(
        'div',
        { class: `proml-srm ${report.srm?.flagged ? 'proml-srm-flagged' : 'proml-srm-ok'}` },
        report.srm_line
      )
    );
    const treated = analysis.metrics.filter(m => m.arm !== analysis.control);
    parts.push(
      table(
        ['Metric', 'Arm', 'Members', 'Mean', 'Rel. lift', `${Math.round(100 * (1 - report.alpha))}% CI`, 'p', 'p (always valid)'],
        analysis.metrics.map(m => {
          const control = m.arm === analysis.control;
          const lift = el('span', { class: (m.rel_lift ?? 0) >= 0 ? 'proml-up' : 'proml-down' }, pct(m.rel_lift));
          return [
            m.metric,
            m.arm,
            m.n.toLocaleString(),
            num(m.mean),
            control ? '' : lift,
            control ? '' : `[${pct(m.rel_low)}, ${pct(m.rel_high)}]`,
            control ? '' : pval(m.p_value),
            control ? '' : pval(m.p_always_valid)
          ];
        }),
        'proml-experiment-metrics'
      )
    );
    if (treated.length) {
      parts.push(liftChart(treated, report.alpha));
    }
    this.detail.replaceChildren(...parts);
  }

  private selected: string | null = null;
  readonly list: HTMLDivElement;
  readonly detail: HTMLDivElement;
}

export const experimentsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyterlab-proml:experiments',
  description: 'The Experiments panel: A/B experiments, their decision, SRM check and lifts with CIs.',
  autoStart: true,
  activate: (app: JupyterFrontEnd) => {
    app.shell.add(new ExperimentsPanel(), 'left', { rank: 602 });
  }
};
