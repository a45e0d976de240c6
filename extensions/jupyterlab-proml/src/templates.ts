/**
 * Command palette: "New model from template" inserts a Quasar template as a `%%quasar` cell.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, InputDialog, showErrorMessage } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookActions, NotebookPanel } from '@jupyterlab/notebook';

import { ITemplate, requestAPI } from './api';
import { MAGIC } from './quasar';

export const COMMAND = 'proml:new-model-from-template';

/** The `%%quasar` cell source for a template and a model name. */
export function quasarCell(template: ITemplate, modelName: string): string {
  return `${MAGIC}\n${template.text.split('{{name}}').join(modelName).replace(/\n+$/, '')}\n`;
}

async function targetNotebook(app: JupyterFrontEnd, tracker: INotebookTracker): Promise<NotebookPanel> {
  if (tracker.currentWidget) {
    return tracker.currentWidget;
  }
  const panel = (await app.commands.execute('notebook:create-new')) as NotebookPanel;
  await panel.context.ready;
  return panel;
}

export const templatesPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyterlab-proml:templates',
  description: 'New model from a Quasar template.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker, palette: ICommandPalette | null) => {
    app.commands.addCommand(COMMAND, {
      label: 'New model from template',
      caption: 'Insert a Quasar model template as a %%quasar cell',
      execute: async () => {
        let templates: ITemplate[];
        try {
          templates = (await requestAPI<{ templates: ITemplate[] }>(['templates'])).templates.filter(
            t => t.kind === 'quasar'
          );
        } catch (error) {
          return showErrorMessage('ProML templates', error as Error);
        }
        if (!templates.length) {
          return showErrorMessage('ProML templates', 'No Quasar template is installed.');
        }
        const labels = templates.map(t => (t.description ? `${t.name}: ${t.description}` : t.name));
        const choice = await InputDialog.getItem({ title: 'New model from template', items: labels });
        if (!choice.button.accept || choice.value === null) {
          return;
        }
        const named = await InputDialog.getText({ title: 'Model name', text: 'my_model' });
        if (!named.button.accept || !named.value) {
          return;
        }
        const template = templates[labels.indexOf(choice.value)];
        const panel = await targetNotebook(app, tracker);
        const notebook = panel.content;
        const active = notebook.activeCell;
        if (active && active.model.type === 'code' && active.model.sharedModel.getSource().trim() === '') {
          active.model.sharedModel.setSource(quasarCell(template, named.value));
        } else {
          NotebookActions.insertBelow(notebook);
          notebook.activeCell?.model.sharedModel.setSource(quasarCell(template, named.value));
        }
        app.shell.activateById(panel.id);
      }
    });
    palette?.addItem({ command: COMMAND, category: 'ProML Lab' });
  }
};
