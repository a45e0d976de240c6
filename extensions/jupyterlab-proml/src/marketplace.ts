/**
 * The Feature Marketplace panel (left sidebar): search, filters, results, detail, "insert into cell".
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { INotebookTracker } from '@jupyterlab/notebook';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { IFeatureDetail, IFeatureHit, requestAPI } from './api';
import { el, errorText } from './dom';

const ICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24"><path class="jp-icon3" fill="#616161" ' +
  'd="M4 4h16v4H4zm0 6h16v4H4zm0 6h16v4H4z"/></svg>';
export const marketplaceIcon = new LabIcon({ name: 'jupyterlab-proml:marketplace', svgstr: ICON_SVG });

/** Put `line` on its own line above the cursor of the active notebook's active cell. */
export function insertIntoActiveCell(tracker: INotebookTracker, line: string): boolean {
  const cell = tracker.activeCell;
  if (!cell) {
    return false;
  }
  const editor = cell.editor;
  const source = cell.model.sharedModel;
  let offset = source.getSource().length;
  if (editor) {
    const position = editor.getCursorPosition();
    offset = editor.getOffsetAt({ line: position.line, column: 0 });
  }
  const text = source.getSource();
  const prefix = offset === text.length && text.length > 0 && !text.endsWith('\n') ? '\n' : '';
  source.updateSource(offset, offset, prefix + line + (prefix ? '' : '\n'));
  return true;
}

export class MarketplacePanel extends Widget {
  constructor(private tracker: INotebookTracker) {
    super();
    this.id = 'proml-marketplace';
    this.addClass('proml-panel');
    this.title.icon = marketplaceIcon;
    this.title.caption = 'Feature Marketplace';
    const node = this.node;
    node.appendChild(el('h3', {}, 'Feature Marketplace'));
    this.query = el('input', { type: 'search', placeholder: 'search features', class: 'proml-search' });
    this.entity = el('input', { type: 'text', placeholder: 'entity', class: 'proml-entity' });
    this.type = el('input', { type: 'text', placeholder: 'type', class: 'proml-type' });
    const go = el('button', { class: 'jp-mod-styled proml-go' }, 'Search');
    node.appendChild(el('div', { class: 'proml-row' }, this.query, go));
    node.appendChild(el('div', { class: 'proml-row' }, this.entity, this.type));
    this.results = el('ul', { class: 'proml-results' });
    this.detail = el('div', { class: 'proml-detail' });
    node.appendChild(this.results);
    node.appendChild(this.detail);
    go.addEventListener('click', () => void this.search());
    for (const input of [this.query, this.entity, this.type]) {
      input.addEventListener('keydown', event => {
        if (event.key === 'Enter') {
          void this.search();
        }
      });
    }
  }

  async search(): Promise<void> {
    this.results.textContent = 'Searching...';
    try {
      const data = await requestAPI<{ features: IFeatureHit[] }>(['features'], {
        q: this.query.value,
        entity: this.entity.value.trim(),
        type: this.type.value.trim(),
        limit: 50
      });
      this.results.textContent = '';
      if (!data.features.length) {
        this.results.appendChild(el('li', { class: 'proml-empty' }, 'No feature matches.'));
      }
      for (const hit of data.features) {
        const item = el(
          'li',
          { class: 'proml-hit', 'data-name': hit.name, title: hit.description },
          el('span', { class: 'proml-hit-name' }, hit.name),
          el('span', { class: 'proml-hit-meta' }, ` ${hit.entity} · ${hit.type}${hit.online ? ' · online' : ''}`)
        );
        item.addEventListener('click', () => void this.showFeature(hit));
        this.results.appendChild(item);
      }
    } catch (error) {
      this.results.textContent = errorText(error);
    }
  }

  async showFeature(hit: IFeatureHit): Promise<void> {
    for (const item of Array.from(this.results.children)) {
      item.classList.toggle('jp-mod-selected', item.getAttribute('data-name') === hit.name);
    }
    this.detail.textContent = 'Loading...';
    try {
      const info = await requestAPI<IFeatureDetail>(['features', hit.name]);
      const stats = (info.stats[0]?.stats ?? {}) as Record<string, unknown>;
      const numbers = ['mean', 'std', 'min', 'max', 'null_rate', 'distinct']
        .filter(key => typeof stats[key] === 'number')
        .map(key => `${key} ${Number(stats[key]).toPrecision(4)}`);
      const insert = el('button', { class: 'jp-mod-styled jp-mod-accept proml-insert' }, 'Insert into cell');
      insert.addEventListener('click', () => {
        if (!insertIntoActiveCell(this.tracker, hit.reference)) {
          insert.textContent = 'Open a notebook cell first';
        }
      });
      this.detail.textContent = '';
      this.detail.append(
        el('h4', {}, info.feature.name),
        el('p', {}, info.feature.description ?? ''),
        el('code', { class: 'proml-reference' }, hit.reference),
        el('div', {}, `Used by: ${info.lineage.length ? info.lineage.join(', ') : 'no model yet'}`),
        el('div', {}, `Online: ${info.online.freshness} (${info.online.rows ?? 0} rows)`),
        el('div', {}, `Versions: ${info.versions.length}`),
        el('div', { class: 'proml-stats' }, numbers.length ? `Stats: ${numbers.join(', ')}` : 'No statistics yet'),
        insert
      );
    } catch (error) {
      this.detail.textContent = errorText(error);
    }
  }

  readonly query: HTMLInputElement;
  readonly entity: HTMLInputElement;
  readonly type: HTMLInputElement;
  readonly results: HTMLUListElement;
  readonly detail: HTMLDivElement;
}

export const marketplacePlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyterlab-proml:marketplace',
  description: 'The Feature Marketplace panel.',
  autoStart: true,
  requires: [INotebookTracker],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker) => {
    const panel = new MarketplacePanel(tracker);
    app.shell.add(panel, 'left', { rank: 600 });
    app.commands.addCommand('proml:open-marketplace', {
      label: 'Open Feature Marketplace',
      execute: () => app.shell.activateById(panel.id)
    });
  }
};
