/**
 * The Models panel (left sidebar): tracked runs with their metrics (pick two to compare them, or publish
 * one), and the registered models with their versions, aliases and metrics.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { IComparison, IModelRun, IModelVersion, IRegisteredModel, requestAPI } from './api';
import { el, errorText } from './dom';

const ICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24"><path class="jp-icon3" fill="#616161" ' +
  'd="M4 20V10h3v10zm6.5 0V4h3v16zM17 20v-7h3v7z"/></svg>';
export const modelsIcon = new LabIcon({ name: 'jupyterlab-proml:models', svgstr: ICON_SVG });

function fmt(value: number | null): string {
  return value === null || value === undefined ? 'n/a' : value.toFixed(4);
}

/** What the Publish dialog asks for. */
interface IPublishForm {
  name: string;
  alias: string;
}

/** The Publish dialog's body: a model name (default: the run's name) and an optional alias. */
class PublishForm extends Widget implements Dialog.IBodyWidget<IPublishForm> {
  constructor(defaultName: string) {
    super();
    this.addClass('proml-publish-form');
    this.name = el('input', { class: 'jp-mod-styled proml-publish-name', type: 'text', value: defaultName });
    this.alias = el('input', {
      class: 'jp-mod-styled proml-publish-alias',
      type: 'text',
      placeholder: 'optional, e.g. champion'
    });
    this.node.append(el('label', {}, 'Model name', this.name), el('label', {}, 'Alias', this.alias));
  }

  getValue(): IPublishForm {
    return { name: this.name.value.trim(), alias: this.alias.value.trim() };
  }

  readonly name: HTMLInputElement;
  readonly alias: HTMLInputElement;
}

/** The metrics shown for registered versions: these first (when present), then the others, sorted. */
const KEY_METRICS = ['auc', 'logloss', 'ndcg_at_10', 'ndcg@10'];

function metricKeys(versions: IModelVersion[]): string[] {
  const all = new Set(versions.flatMap(v => Object.keys(v.metrics)));
  const first = KEY_METRICS.filter(k => all.has(k));
  return first.concat(Array.from(all).filter(k => !first.includes(k)).sort());
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
    this.status = el('div', { class: 'proml-publish-status' });
    this.registry = el('div', { class: 'proml-registry' });
    this.node.append(
      el('h3', {}, 'Models'),
      el('div', { class: 'proml-row' }, refresh, this.compareButton),
      this.runs,
      this.comparison,
      this.status,
      el('h4', {}, 'Registered models'),
      this.registry
    );
    refresh.addEventListener('click', () => void Promise.all([this.refresh(), this.refreshRegistry()]));
    this.compareButton.addEventListener('click', () => void this.compare());
  }

  protected onAfterAttach(): void {
    void this.refresh();
    void this.refreshRegistry();
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
      const head = el('tr', {}, el('th', {}, ''), el('th', { class: 'proml-run-name' }, 'Run'), el('th', {}, 'Status'));
      keys.forEach(k => head.appendChild(el('th', {}, k)));
      const body = el('tbody');
      for (const run of data.models) {
        const box = el('input', { type: 'checkbox', 'data-run': run.id });
        box.addEventListener('change', () => this.pick(run.id, box.checked));
        const publish = el(
          'button',
          { class: 'jp-mod-styled proml-publish', 'data-run': run.id, title: 'Publish this run on the Model Registry' },
          'Publish'
        );
        publish.addEventListener('click', () => void this.publish(run));
        const row = el(
          'tr',
          {},
          el('td', {}, box),
          el('td', { class: 'proml-run-name', title: run.id }, run.name ?? run.id, publish),
          el('td', {}, run.status)
        );
        keys.forEach(k => row.appendChild(el('td', {}, k in run.metrics ? fmt(run.metrics[k]) : '')));
        body.appendChild(row);
      }
      this.runs.appendChild(
        el('div', { class: 'proml-scroll' }, el('table', { class: 'proml-table' }, el('thead', {}, head), body))
      );
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
      this.comparison.appendChild(
        el('div', { class: 'proml-scroll' }, el('table', { class: 'proml-table' }, el('thead', {}, head), body))
      );
    } catch (error) {
      this.comparison.textContent = errorText(error);
    }
  }

  /** Ask for a model name and an alias, publish the run's bundle, then show the registry again. */
  async publish(run: IModelRun): Promise<void> {
    const form = new PublishForm(run.name ?? '');
    const result = await showDialog({
      title: `Publish run ${run.name ?? run.id}`,
      body: form,
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Publish' })],
      focusNodeSelector: 'input'
    });
    if (!result.button.accept || !result.value) {
      return;
    }
    const { name, alias } = result.value;
    this.status.className = 'proml-publish-status';
    this.status.textContent = `Publishing ${run.name ?? run.id}...`;
    try {
      const version = await requestAPI<IModelVersion>(
        ['registry', 'publish'],
        {},
        { method: 'POST', body: { run_id: run.id, name: name || undefined, alias: alias || undefined } }
      );
      const aliases = version.aliases.length ? ` (${version.aliases.join(', ')})` : '';
      const message = `Published ${version.name} version ${version.version}${aliases}`;
      this.status.classList.add('proml-ok');
      this.status.textContent = message;
      Notification.success(message, { autoClose: 5000 });
    } catch (error) {
      this.status.classList.add('proml-error');
      this.status.textContent = errorText(error);
      Notification.error(errorText(error), { autoClose: 8000 });
    }
    await this.refreshRegistry();
  }

  /** The registered models, each with its versions (newest first): aliases as badges, key metrics. */
  async refreshRegistry(): Promise<void> {
    try {
      const data = await requestAPI<{ models: IRegisteredModel[] }>(['registry']);
      this.registry.textContent = '';
      if (!data.models.length) {
        this.registry.textContent = 'No registered models yet: publish a run.';
        return;
      }
      for (const model of data.models) {
        const keys = metricKeys(model.versions);
        const head = el('tr', {}, el('th', {}, 'Version'), el('th', {}, 'Aliases'));
        keys.forEach(k => head.appendChild(el('th', {}, k)));
        head.appendChild(el('th', {}, 'Run'));
        const body = el('tbody');
        for (const v of model.versions) {
          const badges = v.aliases.map(a => el('span', { class: 'proml-badge', 'data-alias': a }, a));
          const row = el(
            'tr',
            { class: 'proml-version', 'data-version': v.version },
            el('td', {}, v.version),
            el('td', {}, ...badges)
          );
          keys.forEach(k => row.appendChild(el('td', {}, k in v.metrics ? fmt(v.metrics[k]) : '')));
          row.appendChild(el('td', { title: v.run_id ?? '' }, (v.run_id ?? '').slice(0, 8)));
          body.appendChild(row);
        }
        this.registry.appendChild(
          el(
            'div',
            { class: 'proml-registered', 'data-model': model.name },
            el('div', { class: 'proml-registered-name' }, model.name, ` (latest: ${model.latest_version ?? 'none'})`),
            el('div', { class: 'proml-scroll' }, el('table', { class: 'proml-table' }, el('thead', {}, head), body))
          )
        );
      }
    } catch (error) {
      this.registry.textContent = errorText(error);
    }
  }

  private picked: string[] = [];
  readonly status: HTMLDivElement;
  readonly registry: HTMLDivElement;
  readonly runs: HTMLDivElement;
  readonly comparison: HTMLDivElement;
  readonly compareButton: HTMLButtonElement;
}

export const modelsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyterlab-proml:models',
  description: 'The Models panel: tracked runs, comparisons, registered models and publishing.',
  autoStart: true,
  activate: (app: JupyterFrontEnd) => {
    app.shell.add(new ModelsPanel(), 'left', { rank: 601 });
  }
};
