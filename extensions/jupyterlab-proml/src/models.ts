/**
 * The Models panel (left sidebar): tracked runs with their metrics; pick two to compare them.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { IComparison, IModelRun, requestAPI } from './api';
import { el, errorText } from './dom';

const ICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24"><path class="jp-icon3" fill="#616161" ' +
  'd="M4 20V10h3v10zm6.5 0V4h3v16zM17 20v-7h3v7z"/></svg>';
export const modelsIcon = new LabIcon({ name: 'jupyterlab-proml:models', svgstr: ICON_SVG });

function fmt(value: number | null): string {
  return value === null || value === undefined ? 'n/a' : value.toFixed(4);
}

export class ModelsPanel extends Widget {
  constructor() {
    super();
    this.id = 'proml-models';
    this.addClass('proml-panel');
    this.title.icon = modelsIcon;
    this.title.caption = 'Models';
    const refresh = el('button', { class: 'jp-mod-styled proml-refresh' }, 'Refresh');
    this.compareButton = el('button', { class: 'jp-mod-styled jp-mod-accept proml-compare' }, 'Compare');
    this.compareButton.disabled = true;
    this.runs = el('div', { class: 'proml-runs' });
    this.comparison = el('div', { class: 'proml-comparison' });
    this.node.append(
      el('h3', {}, 'Models'),
      el('div', { class: 'proml-row' }, refresh, this.compareButton),
      this.runs,
      this.comparison
    );
    refresh.addEventListener('click', () => void this.refresh());
    this.compareButton.addEventListener('click', () => void this.compare());
  }

  protected onAfterAttach(): void {
    void this.refresh();
  }

  /** Ids of the checked runs, in the order they were checked (first = baseline). */
  get selected(): string[] {
    return this.picked.slice();
  }

  async refresh(): Promise<void> {
    this.runs.textContent = 'Loading...';
    this.picked = [];
    this.compareButton.disabled = true;
    try {
      const data = await requestAPI<{ models: IModelRun[] }>(['models']);
      this.runs.textContent = '';
      if (!data.models.length) {
        this.runs.textContent = 'No tracked runs yet: train a model (proml train, or %quasar_train).';
        return;
      }
      const keys = Array.from(new Set(data.models.flatMap(m => Object.keys(m.metrics)))).sort();
      const head = el('tr', {}, el('th', {}, ''), el('th', {}, 'Run'), el('th', {}, 'Status'));
      keys.forEach(k => head.appendChild(el('th', {}, k)));
      const body = el('tbody');
      for (const run of data.models) {
        const box = el('input', { type: 'checkbox', 'data-run': run.id });
        box.addEventListener('change', () => this.pick(run.id, box.checked));
        const row = el('tr', {}, el('td', {}, box), el('td', { title: run.id }, run.name ?? run.id), el('td', {}, run.status));
        keys.forEach(k => row.appendChild(el('td', {}, k in run.metrics ? fmt(run.metrics[k]) : '')));
        body.appendChild(row);
      }
      this.runs.appendChild(el('table', { class: 'proml-table' }, el('thead', {}, head), body));
    } catch (error) {
      this.runs.textContent = errorText(error);
    }
  }

  private pick(id: string, on: boolean): void {
    this.picked = this.picked.filter(x => x !== id);
    if (on) {
      this.picked.push(id);
    }
    this.compareButton.disabled = this.picked.length !== 2;
  }

  async compare(): Promise<void> {
    const [a, b] = this.picked;
    this.comparison.textContent = 'Comparing...';
    try {
      const data = await requestAPI<IComparison>(['models', 'compare'], { a, b });
      const head = el('tr', {}, ...['Metric', data.names[0], data.names[1], 'Lift'].map(h => el('th', {}, h)));
      const body = el('tbody');
      data.rows.forEach((cells, i) => {
        const lift = data.metrics[i].lift ?? 0;
        const row = el('tr', {}, ...cells.map(c => el('td', {}, c)));
        row.lastElementChild?.classList.add(lift > 0 ? 'proml-up' : lift < 0 ? 'proml-down' : 'proml-flat');
        body.appendChild(row);
      });
      this.comparison.textContent = '';
      this.comparison.appendChild(el('table', { class: 'proml-table' }, el('thead', {}, head), body));
    } catch (error) {
      this.comparison.textContent = errorText(error);
    }
  }

  private picked: string[] = [];
  readonly runs: HTMLDivElement;
  readonly comparison: HTMLDivElement;
  readonly compareButton: HTMLButtonElement;
}

export const modelsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyterlab-proml:models',
  description: 'The Models panel: tracked runs and comparisons.',
  autoStart: true,
  activate: (app: JupyterFrontEnd) => {
    app.shell.add(new ModelsPanel(), 'left', { rank: 601 });
  }
};
